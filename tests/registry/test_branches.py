"""Branches, protection, promotion to main and lineage across models (SPEC 3.6), through
the services."""

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin as django_admin

from approvals.models import RequestStatus
from approvals.services import request_approve, request_create
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import (
    INGREDIENT_FIELDS,
    ActivityEvent,
    Blob,
    Branch,
    LockLevel,
    ModelVersion,
    Stage,
    Visibility,
)
from registry.services.branches import branch_create, branch_set_protection, version_promote
from registry.services.orgs import org_update
from registry.services.registered_models import model_create
from registry.services.versions import version_create, version_update
from registry.storage import stored_blob_keys

pytestmark = pytest.mark.django_db

INGREDIENTS = {
    "framework": "sklearn",
    "flavor": "pickle",
    "environment": {"python_version": "3.11", "requirements": "scikit-learn==1.5"},
    "datasets": [{"name": "cards", "uri": "s3://data/cards", "version": "7"}],
    "code_version": {"repo": "git@example.com:ml/fraud", "commit": "abc123", "path": "train"},
    "params": {"lr": 0.1},
    "metrics": {"auc": 0.93},
    "input_schema": {"type": "object"},
    "output_schema": {"type": "number"},
    "experiment_id": "exp-42",
    "source_run": "runs:/42",
}


@pytest.fixture
def experimental(model, exp, alice) -> ModelVersion:
    """fraud v1 on branch exp, with every ingredient and two files."""
    return version_create(
        actor=alice,
        model=model,
        branch="exp",
        description="tuned",
        readme="# Tuned",
        tags={"team": "risk"},
        artifacts={"model.bin": io.BytesIO(b"weights"), "conf/a.json": io.BytesIO(b"{}")},
        **INGREDIENTS,
    )


def last_event() -> ActivityEvent:
    return ActivityEvent.objects.order_by("-created_at", "-seq").first()


# Creating branches


def test_it_creates_a_branch_with_an_event(model, alice):
    branch = branch_create(actor=alice, model=model, name="exp-1.2_b")
    assert (branch.name, branch.protected, branch.created_by) == ("exp-1.2_b", False, alice)
    event = last_event()
    assert (event.verb, event.target_type, event.model_id) == ("branch.created", "branch", model.pk)
    assert event.changes == {"name": [None, "exp-1.2_b"], "protected": [None, False]}


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 129, None, 3])
def test_it_refuses_an_invalid_branch_name(model, alice, name):
    with pytest.raises(Invalid):
        branch_create(actor=alice, model=model, name=name)
    assert list(Branch.objects.filter(model=model).values_list("name", flat=True)) == ["main"]


def test_it_registers_on_a_branch_read_with_the_model(cast, model, alice, exp):
    from registry.permissions import get_model_for_registration

    found, branch, access = get_model_for_registration(alice, "acme", "fraud", "exp")
    assert branch == exp and found == model and access.write
    version = version_create(actor=alice, model=found, branch=branch)
    assert (version.branch, version.lock_level) == (exp, found.org.default_lock_level)
    assert get_model_for_registration(alice, "acme", "fraud", "nope")[1] is None


def test_version_register_reads_model_branch_and_access_once(cast, model, alice, exp):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.services.versions import version_register

    with CaptureQueriesContext(connection) as queries:
        version = version_register(actor=alice, org="acme", model="fraud", branch="exp")
    assert (version.model, version.branch) == (model, exp)
    reads = [q["sql"] for q in queries if "registry_membership" in q["sql"]]
    assert len(reads) == 1  # the access, read with the model and branch, not again
    with pytest.raises(Invalid, match="branch nope does not exist on model fraud"):
        version_register(actor=alice, org="acme", model="fraud", branch="nope")


@pytest.mark.parametrize("who, refused", [("mallory", NotFound), ("carol", Forbidden)])
def test_version_register_keeps_the_access_rules(cast, model, who, refused):
    from registry.services.versions import version_register

    with pytest.raises(refused):
        version_register(actor=getattr(cast, who), org="acme", model="fraud", tags={"a": "1"})
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_refuses_a_branch_of_another_model(cast, model, alice, exp):
    other = model_create(actor=alice, org=model.org, name="churn")
    with pytest.raises(Invalid, match="branch exp is not a branch of model churn"):
        version_create(actor=alice, model=other, branch=exp)
    assert not ModelVersion.objects.filter(model=other).exists()


def test_it_refuses_a_duplicate_branch(model, alice, exp):
    events = ActivityEvent.objects.count()
    with pytest.raises(Conflict, match="already exists"):
        branch_create(actor=alice, model=model, name="exp")
    with pytest.raises(Conflict):
        branch_create(actor=alice, model=model, name="main")
    assert ActivityEvent.objects.count() == events


def test_it_lets_only_writers_create_branches(model, carol, mallory):
    with pytest.raises(Forbidden):
        branch_create(actor=carol, model=model, name="exp")
    with pytest.raises(NotFound):
        branch_create(actor=mallory, model=model, name="exp")
    assert Branch.objects.filter(model=model).count() == 1


# Protection


def test_it_protects_a_branch_for_an_org_admin(model, admin, exp):
    branch = branch_set_protection(actor=admin, branch=exp, protected=True)
    assert Branch.objects.get(pk=exp.pk).protected is True and branch.protected is True
    event = last_event()
    assert (event.verb, event.target_type, event.target_id) == (
        "settings.changed",
        "branch",
        str(exp.pk),
    )
    assert event.changes == {"protected": [False, True]}
    assert event.model_id == model.pk and event.data == {"branch": "exp"}


def test_it_records_nothing_for_an_unchanged_protection(admin, exp):
    events = ActivityEvent.objects.count()
    branch_set_protection(actor=admin, branch=exp, protected=False)
    assert ActivityEvent.objects.count() == events


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
def test_it_lets_only_org_admins_change_protection(cast, exp, who):
    with pytest.raises(Forbidden, match="org admin"):
        branch_set_protection(actor=getattr(cast, who), branch=exp, protected=True)
    assert Branch.objects.get(pk=exp.pk).protected is False


def test_it_hides_protection_from_another_org(mallory, exp):
    with pytest.raises(NotFound):
        branch_set_protection(actor=mallory, branch=exp, protected=True)
    assert Branch.objects.get(pk=exp.pk).protected is False


def test_it_keeps_main_protected(model, admin):
    main = Branch.objects.get(model=model, name="main")
    with pytest.raises(Invalid, match="main is always protected"):
        branch_set_protection(actor=admin, branch=main, protected=False)
    assert Branch.objects.get(pk=main.pk).protected is True


def test_it_refuses_a_protection_that_is_not_a_boolean(admin, exp):
    with pytest.raises(Invalid):
        branch_set_protection(actor=admin, branch=exp, protected="yes")


# Production only from a protected branch


def test_it_refuses_production_from_an_unprotected_branch(experimental, alice):
    with pytest.raises(Invalid, match="not protected"):
        request_create(actor=alice, version=experimental, to_stage=Stage.PRODUCTION)
    request_create(actor=alice, version=experimental, to_stage=Stage.STAGING)  # others are fine


def test_it_allows_production_once_the_branch_is_protected(experimental, admin, alice, bob):
    branch_set_protection(actor=admin, branch=experimental.branch, protected=True)
    change = request_create(actor=alice, version=experimental, to_stage=Stage.PRODUCTION)
    request_approve(actor=bob, request=change)
    assert ModelVersion.objects.get(pk=experimental.pk).stage == Stage.PRODUCTION


def test_it_fails_a_pending_production_request_once_the_branch_is_released(
    experimental, admin, alice, bob
):
    branch_set_protection(actor=admin, branch=experimental.branch, protected=True)
    change = request_create(actor=alice, version=experimental, to_stage=Stage.PRODUCTION)
    branch_set_protection(actor=admin, branch=experimental.branch, protected=False)
    with pytest.raises(Conflict, match="no longer on a protected branch"):
        request_approve(actor=bob, request=change)
    change.refresh_from_db()
    assert change.status == RequestStatus.PENDING
    assert ModelVersion.objects.get(pk=experimental.pk).stage == Stage.UNASSIGNED


# Promotion


def _stored_files() -> list[Path]:
    root = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_it_promotes_a_version_to_main_sharing_its_blobs(model, experimental, alice):
    blobs = Blob.objects.count()
    files = _stored_files()
    promoted = version_promote(actor=alice, version=experimental)
    promoted = ModelVersion.objects.select_related("branch").get(pk=promoted.pk)
    assert (promoted.branch.name, promoted.number, promoted.model_id) == ("main", 2, model.pk)
    assert list(promoted.parents.all()) == [experimental]
    for field in INGREDIENT_FIELDS:
        assert getattr(promoted, field) == getattr(experimental, field), field
    assert (promoted.description, promoted.readme, promoted.tags) == (
        "tuned",
        "# Tuned",
        {"team": "risk"},
    )
    source = dict(experimental.artifacts.values_list("path", "blob_id"))
    assert dict(promoted.artifacts.values_list("path", "blob_id")) == source
    assert set(promoted.artifacts.values_list("pk", flat=True)).isdisjoint(
        experimental.artifacts.values_list("pk", flat=True)
    )
    # No byte copied: the same blobs, each stored exactly once.
    assert Blob.objects.count() == blobs
    assert _stored_files() == files and len(files) == 2
    assert sorted(stored_blob_keys()) == sorted(source.values())
    assert promoted.digest != experimental.digest  # the parent is an ingredient


def test_it_records_the_creation_and_the_promotion(model, experimental, alice):
    promoted = version_promote(actor=alice, version=experimental)
    created, promotion = ActivityEvent.objects.filter(model_id=model.pk).order_by("-seq")[:2][::-1]
    assert (created.verb, created.version_id) == ("version.created", promoted.pk)
    assert created.changes["branch"] == [None, "main"]
    assert created.data == {"artifacts": ["conf/a.json", "model.bin"], "parents": ["fraud v1"]}
    assert (promotion.verb, promotion.version_id, promotion.actor) == (
        "branch.promoted",
        promoted.pk,
        alice,
    )
    assert promotion.changes == {"branch": ["exp", "main"], "number": [1, 2]}
    assert promotion.data["from"] == {"number": 1, "id": str(experimental.pk), "branch": "exp"}
    assert promotion.data["to"]["number"] == 2


def test_it_promotes_with_a_label_and_description(experimental, alice):
    promoted = version_promote(
        actor=alice, version=experimental, label="1.0.0", description="released"
    )
    assert (promoted.label, promoted.description) == ("1.0.0", "released")


def test_it_promotes_at_the_org_default_lock_level(acme, admin, experimental, alice):
    org_update(actor=admin, org=acme, default_lock_level=LockLevel.CLOSED)
    promoted = version_promote(actor=alice, version=experimental)
    assert promoted.lock_level == LockLevel.CLOSED
    assert promoted.artifacts.count() == 2


def test_it_lets_a_promoted_version_enter_production(experimental, alice, bob):
    promoted = version_promote(actor=alice, version=experimental)
    request_approve(
        actor=bob,
        request=request_create(actor=alice, version=promoted, to_stage=Stage.PRODUCTION),
    )
    assert ModelVersion.objects.get(pk=promoted.pk).stage == Stage.PRODUCTION


def test_it_refuses_to_promote_a_version_on_main(model, alice):
    on_main = version_create(actor=alice, model=model)
    with pytest.raises(Invalid, match="already on main"):
        version_promote(actor=alice, version=on_main)
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_it_refuses_a_taken_label_and_keeps_nothing(model, experimental, alice):
    version_create(actor=alice, model=model, label="1.0.0")
    events = ActivityEvent.objects.count()
    with pytest.raises(Conflict):
        version_promote(actor=alice, version=experimental, label="1.0.0")
    assert ModelVersion.objects.filter(model=model).count() == 2
    assert ActivityEvent.objects.count() == events


def test_it_lets_only_writers_promote(model, experimental, carol, bob, mallory):
    for who in (carol, bob):
        with pytest.raises(Forbidden):
            version_promote(actor=who, version=experimental)
    with pytest.raises(NotFound):
        version_promote(actor=mallory, version=experimental)
    assert ModelVersion.objects.filter(model=model).count() == 1


# Parents across models and orgs


@pytest.fixture
def secret_version(acme, admin):
    """A version of a private acme model that only admin may view."""
    secret = model_create(actor=admin, org=acme, name="secret-lab", visibility=Visibility.PRIVATE)
    return version_create(actor=admin, model=secret)


def test_it_accepts_a_parent_of_another_model_the_actor_may_view(model, admin, secret_version):
    child = version_create(actor=admin, model=model, parents=[secret_version])
    assert list(child.parents.all()) == [secret_version]


def test_it_refuses_a_parent_in_a_model_the_actor_may_not_view(
    model, alice, secret_version, experimental
):
    with pytest.raises(NotFound, match="parent version not found"):
        version_create(actor=alice, model=model, parents=[secret_version])
    with pytest.raises(NotFound):
        version_update(actor=alice, version=experimental, parents=[secret_version])
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert not experimental.parents.exists()


def test_it_refuses_a_parent_of_another_org(model, admin, globex, mallory):
    theirs = model_create(actor=mallory, org=globex, name="fraud")
    parent = version_create(actor=mallory, model=theirs)
    with pytest.raises(NotFound):
        version_create(actor=admin, model=model, parents=[parent])
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_leaves_branch_protection_out_of_the_admin_console():
    # A Branch admin would have to route protection through branch_set_protection; until
    # one exists, the console offers no way around the org-admin rule.
    assert not django_admin.site.is_registered(Branch)
