"""`manage.py verify_activity --state` (registry/consistency.py): the activity log replayed
against the stored versions (SPEC 3.2, 3.7). What the services did passes; a change that
went around them is named with its model, version and field, and the command exits
non-zero, including what the triggers cannot refuse (a closed version lowered, edited and
closed again with compliance mode off; a stage moved by update(); changes made with the
triggers dropped)."""

import io
from uuid import UUID

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from approvals.services import request_approve, request_create
from registry.consistency import Drift, state_drift
from registry.digest import compute_digest
from registry.models import (
    ActivityEvent,
    Artifact,
    Branch,
    LockLevel,
    ModelVersion,
    Stage,
    VersionParent,
)
from registry.services.aliases import alias_set
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.branches import branch_create, version_promote
from registry.services.orgs import org_update
from registry.services.registered_models import model_create, model_delete
from registry.services.versions import (
    version_create,
    version_delete,
    version_set_lock_level,
    version_update,
)
from tests.conftest import triggers_lifted

pytestmark = pytest.mark.django_db

CLOSED, OPEN = LockLevel.CLOSED, LockLevel.OPEN


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_activity", "--state", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_drifted(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="differ from the activity log"):
        call_command("verify_activity", "--state", *args, stdout=out, stderr=err)
    return err.getvalue()


def move(version, stage, *, requester, reviewer, **options) -> None:
    request = request_create(actor=requester, version=version, to_stage=stage, **options)
    request_approve(actor=reviewer, request=request)


def raw(statement: str, params: list) -> None:
    """Raw SQL as the database's owner, past the triggers; version ids as stored."""
    pk = ModelVersion._meta.pk
    params = [pk.get_db_prep_value(p, connection) if isinstance(p, UUID) else p for p in params]
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def closed(model, alice) -> ModelVersion:
    parent = version_create(actor=alice, model=model, params={"lr": 0.01})
    return version_create(
        actor=alice,
        model=model,
        lock_level=CLOSED,
        parents=[parent],
        params={"lr": 0.1},
        artifacts={"model.bin": [b"weights"], "README.txt": [b"read me"]},
    )


# --- no false positives --------------------------------------------------------------------


def test_it_passes_after_the_demo_seed(cast):
    call_command("seed_demo", stdout=io.StringIO())

    out, err = run()

    assert err == ""
    for org in ("acme", "globex"):
        versions = ModelVersion.objects.filter(model__org__slug=org).count()
        assert versions > 1
        assert f"{org}: {versions} version(s), as the activity log says" in out


def test_it_passes_after_every_kind_of_service_change(model, acme, admin, alice, bob):
    parent = version_create(actor=alice, model=model, params={"lr": 0.01}, label="0.1.0")
    child = version_create(
        actor=alice, model=model, parents=[parent], artifacts={"model.bin": [b"v1"]}
    )
    # A parent edited after its child was made: the child keeps the digest it had.
    version_update(actor=alice, version=parent, params={"lr": 0.02}, description="retuned")
    artifact_put(actor=alice, version=child, path="model.bin", source=[b"v2"])
    artifact_put(actor=alice, version=child, path="extra.txt", source=[b"x"])
    artifact_delete(actor=alice, version=child, path="extra.txt")
    version_update(actor=alice, version=child, label="1.0.0", metrics={"auc": 0.9})
    other = version_create(actor=alice, model=model)
    version_update(actor=alice, version=child, parents=[parent, other])
    version_set_lock_level(actor=alice, version=child, level=CLOSED)
    version_set_lock_level(actor=admin, version=child, level=LockLevel.REDACT)
    version_set_lock_level(actor=alice, version=child, level=CLOSED)
    move(child, Stage.STAGING, requester=alice, reviewer=bob)
    move(child, Stage.PRODUCTION, requester=alice, reviewer=bob)
    move(parent, Stage.PRODUCTION, requester=alice, reviewer=bob, archive_existing=True)
    alias_set(actor=alice, model=model, name="champion", version=child)
    branch_create(actor=alice, model=model, name="exp")
    experimental = version_create(
        actor=alice, model=model, branch="exp", artifacts={"w.bin": [b"exp"]}
    )
    version_promote(actor=alice, version=experimental, label="2.0.0")
    gone = version_create(actor=alice, model=model, artifacts={"gone.bin": [b"gone"]})
    version_delete(actor=alice, version=gone)
    scratch = model_create(actor=admin, org=acme, name="scratch")
    first = version_create(actor=admin, model=scratch, artifacts={"a.bin": [b"a"]})
    version_create(actor=admin, model=scratch, parents=[first])
    model_delete(actor=admin, model=scratch)
    org_update(actor=admin, org=acme, closed_is_final=True, default_lock_level=CLOSED)
    version_create(actor=alice, model=model, artifacts={"final.bin": [b"final"]})
    # The parent changes again: its closed child keeps the digest made from the one before.
    version_update(actor=alice, version=parent, params={"lr": 0.03})
    stale = ModelVersion.objects.get(pk=child.pk)
    assert stale.digest != compute_digest(stale)

    compared, drifts = state_drift(acme)

    assert drifts == []
    assert compared == ModelVersion.objects.filter(model__org=acme).count() == 6
    assert ModelVersion.objects.get(pk=child.pk).stage == Stage.ARCHIVED
    assert ModelVersion.objects.get(pk=parent.pk).stage == Stage.PRODUCTION


def test_it_costs_the_same_queries_for_more_versions(model, acme, alice):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            state_drift(acme)
        return len(queries)

    version_create(actor=alice, model=model, artifacts={"a.bin": [b"a"]})
    few = count()
    first = version_create(actor=alice, model=model)
    for number in range(12):
        version = version_create(
            actor=alice, model=model, parents=[first], artifacts={"a.bin": [b"%d" % number]}
        )
        version_set_lock_level(actor=alice, version=version, level=CLOSED)

    assert count() == few <= 5


# --- what it names -------------------------------------------------------------------------


def test_it_names_a_closed_version_lowered_edited_and_closed_again_by_save(closed, model):
    """Compliance mode off: the model guard lets save() lower a closed version, and nothing
    writes an event for the edit and the re-close. The digest left behind is stale."""
    version = ModelVersion.objects.get(pk=closed.pk)
    version.lock_level = OPEN
    version.save()
    version.params = {"lr": 0.9}
    version.save()
    version.lock_level = CLOSED
    version.save()

    err = run_drifted()

    assert f"acme: {model.name} v{closed.number} ingredients: the stored ingredients" in err
    assert f"not the stored digest {closed.digest}" in err


def test_it_names_a_digest_brought_in_line_with_an_edit(closed, model):
    version = ModelVersion.objects.get(pk=closed.pk)
    version.lock_level = OPEN
    version.save()
    version.params = {"lr": 0.9}
    version.digest = compute_digest(version)
    version.save()
    version.lock_level = CLOSED
    version.save()

    compared, drifts = state_drift(model.org)

    assert drifts == [
        Drift(
            model.name,
            closed.number,
            "digest",
            f"{version.digest!r} stored, {closed.digest!r} by the activity log",
        )
    ]


def test_it_names_a_stage_moved_by_update(closed, model):
    # Free metadata and the stage stay writable at every level: neither the guard nor the
    # triggers refuse this; only the replay tells it from an approved change.
    ModelVersion.objects.filter(pk=closed.pk).update(stage=Stage.PRODUCTION)

    err = run_drifted()

    assert (
        f"acme: {model.name} v{closed.number} stage: 'production' stored, 'unassigned' by the "
        "activity log"
    ) in err


def test_it_names_an_open_version_edited_by_update(model, alice):
    version = version_create(actor=alice, model=model, params={"lr": 0.1})
    ModelVersion.objects.filter(pk=version.pk).update(params={"lr": 0.2})

    _, drifts = state_drift(model.org)

    assert [(d.number, d.field) for d in drifts] == [(version.number, "ingredients")]


@pytest.mark.parametrize(
    ("statement", "field"),
    [
        ("UPDATE registry_modelversion SET stage = 'archived' WHERE id = %s", "stage"),
        ("UPDATE registry_modelversion SET lock_level = 'open' WHERE id = %s", "lock_level"),
        ("UPDATE registry_modelversion SET label = '9.9.9' WHERE id = %s", "label"),
        ("UPDATE registry_modelversion SET number = 99 WHERE id = %s", "number"),
        ("UPDATE registry_modelversion SET framework = 'forged' WHERE id = %s", "ingredients"),
        (
            "DELETE FROM registry_artifact WHERE version_id = %s AND path = 'README.txt'",
            "ingredients",
        ),
        ("DELETE FROM registry_versionparent WHERE child_id = %s", "ingredients"),
        (
            "UPDATE registry_blob SET size = size + 1 WHERE sha256 IN "
            "(SELECT blob_id FROM registry_artifact WHERE version_id = %s)",
            "ingredients",
        ),
    ],
    ids=["stage", "lock", "label", "number", "ingredient", "artifact", "parent", "blob-size"],
)
def test_it_names_what_changed_with_the_triggers_dropped(closed, model, statement, field):
    raw(statement, [closed.pk])

    _, drifts = state_drift(model.org)

    assert field in {d.field for d in drifts}
    assert {d.model for d in drifts} == {model.name}
    err = run_drifted()
    assert f"acme: {model.name} v" in err and f" {field}: " in err


def test_it_names_a_closed_version_deleted_with_the_triggers_dropped(closed, model):
    raw("DELETE FROM registry_artifact WHERE version_id = %s", [closed.pk])
    raw("DELETE FROM registry_versionparent WHERE child_id = %s", [closed.pk])
    raw("DELETE FROM registry_modelversion WHERE id = %s", [closed.pk])

    err = run_drifted()

    assert (
        f"acme: {model.name} v{closed.number} version: missing, but the activity log never "
        "deleted it"
    ) in err


def test_it_names_a_version_the_log_never_registered(model, alice):
    ModelVersion.objects.create(
        model=model,
        number=77,
        digest="sha256:" + "0" * 64,
        branch=Branch.objects.get(model=model, name=Branch.MAIN),
        lock_level=OPEN,
    )

    err = run_drifted()

    assert f"acme: {model.name} v77 version: stored, but the activity log has none" in err


def test_it_checks_every_org_and_reports_each(closed, model, globex, mallory):
    rockets = model_create(actor=mallory, org=globex, name="rockets")
    version_create(actor=mallory, model=rockets)
    ModelVersion.objects.filter(pk=closed.pk).update(stage=Stage.ARCHIVED)

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_activity", "--state", stdout=out, stderr=err)

    assert "globex: 1 version(s), as the activity log says" in out.getvalue()
    assert "acme: fraud v" in err.getvalue() and "globex" not in err.getvalue()
    assert str(raised.value).endswith("(changed around the services): acme")
    # The chains themselves are intact: only the rows went around the services.
    assert "acme: " in out.getvalue() and "chain intact" in out.getvalue()


def test_it_checks_one_org_with_the_org_option(closed, globex):
    ModelVersion.objects.filter(pk=closed.pk).update(stage=Stage.ARCHIVED)

    out, err = run("--org", "globex")

    assert out.startswith("globex: ") and "acme" not in out + err


def test_it_refuses_the_state_check_of_a_file():
    with pytest.raises(CommandError, match="leave out --org and --state"):
        call_command("verify_activity", "--state", "--file", "export.jsonl")


def test_it_leaves_the_rows_and_the_log_as_they_were(closed, model):
    before = (
        list(ModelVersion.objects.order_by("pk").values()),
        list(Artifact.objects.order_by("pk").values()),
        list(VersionParent.objects.order_by("pk").values()),
        ActivityEvent.objects.count(),
    )
    with transaction.atomic():
        run()

    assert before == (
        list(ModelVersion.objects.order_by("pk").values()),
        list(Artifact.objects.order_by("pk").values()),
        list(VersionParent.objects.order_by("pk").values()),
        ActivityEvent.objects.count(),
    )
