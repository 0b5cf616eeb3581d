"""Closed means closed below the ORM (SPEC 3.2, 3.7): the database's triggers
(registry/migrations/0008) refuse what goes around the services and the model guards (a base
manager, a plain QuerySet, loaddata, raw SQL), on SQLite and PostgreSQL alike, and let every
legitimate path through. The services still refuse first, with their own errors.

Each refusal is an IntegrityError whose message names its rule, and leaves the rows as they
were.
"""

import importlib
import io
import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from approvals.services import request_approve, request_create
from registry.errors import Forbidden, Locked
from registry.models import (
    ActivityEvent,
    Artifact,
    Blob,
    LockLevel,
    ModelVersion,
    Organization,
    Stage,
    VersionParent,
)
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.branches import branch_create, version_promote
from registry.services.orgs import membership_set, org_update
from registry.services.registered_models import model_create, model_delete, model_grant
from registry.services.versions import (
    version_create,
    version_delete,
    version_set_lock_level,
    version_update,
)

pytestmark = pytest.mark.django_db

CLOSED, OPEN = LockLevel.CLOSED, LockLevel.OPEN
ARTIFACTS, PARENTS = Artifact._meta.db_table, VersionParent._meta.db_table
TRIGGERS = importlib.import_module("registry.migrations.0008_closed_and_append_only_triggers")

# Each ingredient column, and a new value for it as raw SQL writes it (JSON as text).
INGREDIENTS = {
    "framework": "xgboost",
    "flavor": "onnx",
    "environment": '{"python_version": "3.12"}',
    "datasets": '[{"name": "cards", "uri": "s3://data/cards", "version": "2"}]',
    "code_version": '{"commit": "def456"}',
    "params": '{"lr": 0.5}',
    "metrics": '{"auc": 0.99}',
    "input_schema": '{"type": "array"}',
    "output_schema": '{"type": "integer"}',
    "experiment_id": "exp-2",
    "source_run": "runs:/2",
}
JSON_COLUMNS = {column for column, value in INGREDIENTS.items() if value[:1] in "{["}


def refused(rule: str):
    return pytest.raises(IntegrityError, match=f"refused by rule {rule}: ")


def sql(statement: str, params=()) -> int:
    """Raw SQL in a savepoint, so that a refusal leaves the test's transaction usable.
    Version ids are passed as the database stores them (SQLite: hex text)."""
    uuid_column = ModelVersion._meta.pk
    params = [
        uuid_column.get_db_prep_value(p, connection) if isinstance(p, uuid.UUID) else p
        for p in params
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def in_savepoint(call):
    """An ORM call in a savepoint, for the same reason."""
    with transaction.atomic():
        return call()


def placeholder(column: str) -> str:
    if column in JSON_COLUMNS and connection.vendor == "postgresql":
        return "%s::jsonb"
    return "%s"


def snapshot(version: ModelVersion) -> dict:
    return {
        "version": ModelVersion.objects.filter(pk=version.pk).values().first(),
        "artifacts": list(Artifact.objects.filter(version=version).order_by("path").values()),
        "parents": sorted(
            str(p)
            for p in VersionParent.objects.filter(child=version).values_list("parent_id", flat=True)
        ),
        "events": list(ActivityEvent.objects.order_by("pk").values_list("pk", "hash")),
    }


@pytest.fixture
def parent(model, alice) -> ModelVersion:
    return version_create(actor=alice, model=model, params={"lr": 0.01})


@pytest.fixture
def closed(model, alice, parent) -> ModelVersion:
    """Born closed, with its files and a parent: their inserts are part of its birth."""
    return version_create(
        actor=alice,
        model=model,
        lock_level=CLOSED,
        parents=[parent],
        artifacts={"model.bin": [b"weights"], "README.txt": [b"read me"]},
        framework="sklearn",
        params={"lr": 0.1},
        input_schema={"type": "object"},
    )


@pytest.fixture
def bare_closed(model, alice) -> ModelVersion:
    """Closed, without artifacts or parents: nothing cascades before its own row."""
    return version_create(actor=alice, model=model, lock_level=CLOSED)


# --- what the triggers refuse --------------------------------------------------------------


@pytest.mark.parametrize("column", INGREDIENTS)
def test_it_refuses_raw_sql_changing_an_ingredient_of_a_closed_version(closed, column):
    before = snapshot(closed)

    with refused("closed_version_ingredients"):
        sql(
            f"UPDATE registry_modelversion SET {column} = {placeholder(column)} WHERE id = %s",
            [INGREDIENTS[column], closed.pk],
        )

    assert snapshot(closed) == before


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("digest", "sha256:" + "0" * 64),
        ("number", 999),
        ("model_id", None),  # set below: another model of the org
        ("branch_id", None),  # set below: another branch of the model
    ],
)
def test_it_refuses_raw_sql_changing_the_digest_or_identity_of_a_closed_version(
    closed, admin, acme, column, value
):
    if column == "model_id":
        value = model_create(actor=admin, org=acme, name="elsewhere").pk
    if column == "branch_id":
        value = branch_create(actor=admin, model=closed.model, name="side").pk
    before = snapshot(closed)

    with refused("closed_version_ingredients"):
        sql(f"UPDATE registry_modelversion SET {column} = %s WHERE id = %s", [value, closed.pk])

    assert snapshot(closed) == before


def test_it_refuses_raw_sql_deleting_a_closed_version(bare_closed):
    with refused("closed_version_deleted"):
        sql("DELETE FROM registry_modelversion WHERE id = %s", [bare_closed.pk])

    assert ModelVersion.objects.filter(pk=bare_closed.pk).exists()


def test_it_refuses_raw_sql_on_the_artifacts_of_a_closed_version(closed, model, alice):
    other = version_create(actor=alice, model=model, artifacts={"other.bin": [b"other"]})
    moved = Artifact.objects.get(version=other)
    blob = Blob.objects.get(pk=moved.blob_id)
    before = snapshot(closed)
    statements = [
        ("DELETE FROM registry_artifact WHERE version_id = %s", [closed.pk]),
        ("UPDATE registry_artifact SET path = %s WHERE version_id = %s", ["x.bin", closed.pk]),
        ("UPDATE registry_artifact SET blob_id = %s WHERE version_id = %s", [blob.pk, closed.pk]),
        # Moving a file out of the closed version, and another into it.
        (f"UPDATE {ARTIFACTS} SET version_id = %s WHERE version_id = %s", [other.pk, closed.pk]),
        (f"UPDATE {ARTIFACTS} SET version_id = %s WHERE id = %s", [closed.pk, moved.pk]),
        (
            "INSERT INTO registry_artifact (version_id, path, blob_id, created_at) "
            "VALUES (%s, %s, %s, CURRENT_TIMESTAMP)",
            [closed.pk, "added.bin", blob.pk],
        ),
    ]
    for statement, params in statements:
        with refused("closed_version_artifacts"):
            sql(statement, params)

    assert snapshot(closed) == before
    assert Artifact.objects.get(pk=moved.pk).version_id == other.pk


def test_it_refuses_raw_sql_on_the_parents_of_a_closed_version(closed, parent, model, alice):
    other = version_create(actor=alice, model=model)
    before = snapshot(closed)
    statements = [
        ("DELETE FROM registry_versionparent WHERE child_id = %s", [closed.pk]),
        (f"UPDATE {PARENTS} SET parent_id = %s WHERE child_id = %s", [other.pk, closed.pk]),
        (
            "INSERT INTO registry_versionparent (child_id, parent_id) VALUES (%s, %s)",
            [closed.pk, other.pk],
        ),
    ]
    for statement, params in statements:
        with refused("closed_version_parents"):
            sql(statement, params)

    assert snapshot(closed) == before


def test_it_refuses_the_orm_bypasses_of_a_closed_version(closed, bare_closed):
    """The bypasses the issue names: past the guards of ModelVersion and Artifact, but not
    past the database."""
    before = snapshot(closed)

    with refused("closed_version_ingredients"):
        in_savepoint(
            lambda: ModelVersion._base_manager.filter(pk=closed.pk).update(params={"lr": 0.9})
        )
    with refused("closed_version_ingredients"):
        in_savepoint(
            lambda: QuerySet(ModelVersion).filter(pk=closed.pk).update(framework="xgboost")
        )
    with refused("closed_version_(parents|artifacts)"):  # what cascades goes first
        in_savepoint(lambda: ModelVersion._base_manager.filter(pk=closed.pk).delete())
    with refused("closed_version_deleted"):
        in_savepoint(lambda: ModelVersion._base_manager.filter(pk=bare_closed.pk).delete())
    with refused("closed_version_artifacts"):
        in_savepoint(
            lambda: Artifact._base_manager.filter(version=closed).update(path="renamed.bin")
        )
    with refused("closed_version_artifacts"):
        in_savepoint(lambda: Artifact._base_manager.filter(version=closed).delete())
    with refused("closed_version_parents"):
        in_savepoint(lambda: VersionParent._base_manager.filter(child=closed).delete())

    assert snapshot(closed) == before
    assert ModelVersion.objects.filter(pk=bare_closed.pk).exists()


def load(tmp_path, records: list[dict]) -> None:
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(records))
    with transaction.atomic():
        call_command("loaddata", str(path), verbosity=0)


def dumped(label: str, *pks) -> list[dict]:
    out = io.StringIO()
    call_command("dumpdata", label, pks=",".join(str(pk) for pk in pks), stdout=out)
    return json.loads(out.getvalue())


def test_it_refuses_loaddata_with_an_edited_fixture(closed, tmp_path):
    before = snapshot(closed)
    version = dumped("registry.ModelVersion", closed.pk)
    version[0]["fields"]["params"] = {"lr": 0.9}
    artifact = dumped("registry.Artifact", Artifact.objects.filter(version=closed).first().pk)
    artifact[0]["fields"]["path"] = "renamed.bin"
    added = {**artifact[0], "pk": None, "fields": {**artifact[0]["fields"], "path": "new.bin"}}
    event = dumped("registry.ActivityEvent", ActivityEvent.objects.latest("pk").pk)
    event[0]["fields"]["verb"] = "version.forged"

    with refused("closed_version_ingredients"):
        load(tmp_path, version)
    with refused("closed_version_artifacts"):
        load(tmp_path, artifact)
    with refused("closed_version_artifacts"):
        load(tmp_path, [added])
    with refused("activity_append_only"):
        load(tmp_path, event)

    assert snapshot(closed) == before


def test_it_refuses_any_update_or_delete_of_an_activity_event(closed):
    event = ActivityEvent.objects.filter(version_id=closed.pk).latest("seq")
    before = snapshot(closed)

    for statement, params in [
        ("UPDATE registry_activityevent SET verb = %s WHERE id = %s", ["lock.lowered", event.pk]),
        ("UPDATE registry_activityevent SET seq = seq WHERE id = %s", [event.pk]),
        ("DELETE FROM registry_activityevent WHERE id = %s", [event.pk]),
        ("DELETE FROM registry_activityevent", []),
    ]:
        with refused("activity_append_only"):
            sql(statement, params)
    with refused("activity_append_only"):
        in_savepoint(
            lambda: ActivityEvent._base_manager.filter(pk=event.pk).update(target_repr="forged")
        )
    with refused("activity_append_only"):
        in_savepoint(lambda: ActivityEvent._base_manager.filter(pk=event.pk).delete())

    assert snapshot(closed) == before


def test_it_refuses_changing_a_blobs_hash_or_size(closed):
    blob = Artifact.objects.filter(version=closed).first().blob

    with refused("blob_content_addressed"):
        sql("UPDATE registry_blob SET size = %s WHERE sha256 = %s", [blob.size + 1, blob.pk])
    with refused("blob_content_addressed"):
        sql("UPDATE registry_blob SET sha256 = %s WHERE sha256 = %s", ["f" * 64, blob.pk])

    assert Blob.objects.filter(pk=blob.pk, size=blob.size).exists()


def test_it_refuses_lowering_a_closed_version_or_leaving_compliance_mode(closed, acme, admin):
    org_update(actor=admin, org=acme, closed_is_final=True)

    with refused("closed_is_final"):
        sql("UPDATE registry_modelversion SET lock_level = %s WHERE id = %s", [OPEN, closed.pk])
    with refused("closed_is_final"):
        in_savepoint(
            lambda: ModelVersion._base_manager.filter(pk=closed.pk).update(lock_level=OPEN)
        )
    with refused("compliance_mode_kept"):
        sql("UPDATE registry_organization SET closed_is_final = %s WHERE id = %s", [False, acme.pk])

    assert ModelVersion.objects.get(pk=closed.pk).lock_level == CLOSED
    assert Organization.objects.get(pk=acme.pk).closed_is_final is True


# --- the services refuse first -------------------------------------------------------------


def test_it_leaves_the_refusals_the_services_can_meet_to_the_domain(closed, acme, admin):
    """Every path of the services stops at its own typed error before the database's."""
    org_update(actor=admin, org=acme, closed_is_final=True)
    calls = [
        (Locked, lambda: version_update(actor=admin, version=closed, params={"lr": 0.9})),
        (Locked, lambda: version_update(actor=admin, version=closed, parents=[])),
        (Locked, lambda: artifact_delete(actor=admin, version=closed, path="model.bin")),
        (Locked, lambda: artifact_put(actor=admin, version=closed, path="x", source=[b"x"])),
        (Locked, lambda: version_delete(actor=admin, version=closed)),
        (Locked, lambda: model_delete(actor=admin, model=closed.model)),
        (Locked, lambda: version_set_lock_level(actor=admin, version=closed, level=OPEN)),
        (Locked, lambda: ModelVersion.objects.filter(pk=closed.pk).update(params={})),
        (Locked, lambda: ModelVersion.objects.filter(pk=closed.pk).delete()),
        (Locked, lambda: Artifact.objects.filter(version=closed).delete()),
        (Forbidden, lambda: org_update(actor=admin, org=acme, closed_is_final=False)),
        (Forbidden, lambda: ActivityEvent.objects.filter(version_id=closed.pk).delete()),
        (Forbidden, lambda: ActivityEvent.objects.filter(version_id=closed.pk).update(data={})),
    ]
    for error, call in calls:
        with pytest.raises(error), transaction.atomic():
            call()


# --- what the triggers let through ---------------------------------------------------------


def test_it_lets_free_metadata_stage_and_an_unset_label_change_on_a_closed_version(closed):
    changed = sql(
        "UPDATE registry_modelversion SET description = %s, readme = %s, stage = %s, "
        "label = %s, updated_at = CURRENT_TIMESTAMP WHERE id = %s",
        ["notes", "# readme", Stage.STAGING, "1.0.0", closed.pk],
    )
    ModelVersion.objects.filter(pk=closed.pk).update(tags={"team": "risk"})

    assert changed == 1
    stored = ModelVersion.objects.get(pk=closed.pk)
    assert (stored.description, stored.stage, stored.label) == ("notes", Stage.STAGING, "1.0.0")
    assert stored.tags == {"team": "risk"}


def test_it_lets_a_closed_version_move_through_the_stages(closed, alice, bob):
    for stage in (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED):
        request = request_create(actor=alice, version=closed, to_stage=stage)
        request_approve(actor=bob, request=request)

    assert ModelVersion.objects.get(pk=closed.pk).stage == Stage.ARCHIVED


def test_it_lets_an_admin_lower_a_closed_version_outside_compliance_mode(closed, admin):
    version_set_lock_level(actor=admin, version=closed, level=OPEN)
    version_update(actor=admin, version=closed, params={"lr": 0.2})

    assert ModelVersion.objects.get(pk=closed.pk).params == {"lr": 0.2}


def test_it_lets_a_user_who_made_closed_versions_be_deleted(model, admin, acme):
    dave = get_user_model().objects.create_user("dave")
    membership_set(actor=admin, org=acme, user=dave)
    model_grant(actor=admin, model=model, permission="write", user=dave)
    version = version_create(
        actor=dave, model=model, lock_level=CLOSED, artifacts={"model.bin": [b"by dave"]}
    )

    dave.delete()  # created_by is set to NULL on the version and its artifact

    stored = ModelVersion.objects.get(pk=version.pk)
    assert stored.created_by_id is None
    assert Artifact.objects.get(version=version).created_by_id is None


def test_it_lets_closed_versions_be_born_and_promoted_with_their_files(model, admin, acme):
    org_update(actor=admin, org=acme, default_lock_level=CLOSED)
    branch_create(actor=admin, model=model, name="exp")
    experimental = version_create(
        actor=admin, model=model, branch="exp", artifacts={"model.bin": [b"exp weights"]}
    )

    promoted = version_promote(actor=admin, version=experimental)

    assert promoted.lock_level == CLOSED
    assert list(Artifact.objects.filter(version=promoted).values_list("path", flat=True)) == [
        "model.bin"
    ]
    assert list(
        VersionParent.objects.filter(child=promoted).values_list("parent_id", flat=True)
    ) == [experimental.pk]


def test_it_lets_open_versions_and_their_models_be_deleted(model, admin, alice, parent):
    child = version_create(actor=alice, model=model, parents=[parent], artifacts={"a.bin": [b"a"]})
    artifact_delete(actor=alice, version=child, path="a.bin")
    version_delete(actor=alice, version=child)
    scratch = model_create(actor=admin, org=model.org, name="scratch")
    first = version_create(actor=admin, model=scratch, artifacts={"b.bin": [b"b"]})
    version_create(actor=admin, model=scratch, parents=[first], lock_level=LockLevel.REDACT)

    model_delete(actor=admin, model=scratch)

    assert not ModelVersion.objects.filter(model__name="scratch").exists()
    assert not ModelVersion.objects.filter(pk=child.pk).exists()


def test_it_leaves_raw_changes_of_open_versions_to_the_state_check(parent):
    # An open version's ingredients may change; that the change bypassed the services is
    # for `verify_activity --state` to name (tests/registry/test_state_check.py).
    assert sql("UPDATE registry_modelversion SET framework = %s WHERE id = %s", ["x", parent.pk])


# --- the migration -------------------------------------------------------------------------


def test_it_drops_every_trigger_when_the_migration_is_reversed(closed, bare_closed):
    vendor = connection.vendor
    with connection.cursor() as cursor:
        for statement in TRIGGERS.drop_statements(vendor):
            cursor.execute(statement)

    # Without the triggers, the bypasses reach the rows (rolled back with the test).
    assert sql("UPDATE registry_modelversion SET framework = %s WHERE id = %s", ["x", closed.pk])
    assert sql("DELETE FROM registry_modelversion WHERE id = %s", [bare_closed.pk])
    assert sql(
        "UPDATE registry_activityevent SET verb = %s WHERE version_id = %s", ["x", closed.pk]
    )

    with connection.cursor() as cursor:
        for statement in TRIGGERS.create_statements(vendor):
            cursor.execute(statement)
    with refused("activity_append_only"):
        sql("DELETE FROM registry_activityevent")


@pytest.mark.postgres
def test_it_refuses_with_postgresqls_restrict_violation(closed):
    with pytest.raises(IntegrityError) as raised:
        sql("UPDATE registry_modelversion SET flavor = %s WHERE id = %s", ["onnx", closed.pk])

    assert raised.value.__cause__.sqlstate == "23001"  # restrict_violation
    assert str(raised.value).startswith("refused by rule closed_version_ingredients: ")


def test_it_keeps_the_triggers_list_of_ingredients_in_step_with_the_model():
    from registry.models import INGREDIENT_FIELDS

    # A new ingredient needs a migration that freezes it too.
    assert set(TRIGGERS.INGREDIENT_COLUMNS) == set(INGREDIENT_FIELDS) == set(INGREDIENTS)
