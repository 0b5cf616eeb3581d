"""Lock levels (SPEC 3.2) through the services, and the ORM guards behind them.

Every refusal is checked twice: it raises the typed error with a message naming the rule, and
it leaves the rows, their history, the activity log and the stored bytes exactly as they were.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from registry.errors import Forbidden, Locked, NotFound
from registry.models import (
    INGREDIENT_FIELDS,
    ActivityEvent,
    Artifact,
    Blob,
    LockLevel,
    ModelVersion,
    RegisteredModel,
    VersionParent,
)
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.orgs import org_update
from registry.services.registered_models import model_create, model_delete
from registry.services.versions import version_create, version_delete, version_update
from registry.services.versions import version_set_lock_level as set_level

pytestmark = pytest.mark.django_db

OPEN, REDACT, CLOSED = LockLevel.OPEN, LockLevel.REDACT, LockLevel.CLOSED

# Each ingredient as the subject version is born, and the value an edit tries to give it.
INGREDIENTS: dict[str, tuple[Any, Any]] = {
    "framework": ("sklearn", "xgboost"),
    "flavor": ("python_function", "onnx"),
    "environment": ({"python_version": "3.11"}, {"python_version": "3.12"}),
    "datasets": (
        [{"name": "cards", "uri": "s3://data/cards", "version": "1"}],
        [{"name": "cards", "uri": "s3://data/cards", "version": "2"}],
    ),
    "code_version": ({"repo": "git@example.com:fraud", "commit": "abc123"}, {"commit": "def456"}),
    "params": ({"lr": 0.1, "depth": 6}, {"lr": 0.2, "depth": 6}),
    "metrics": ({"auc": 0.91}, {"auc": 0.95}),
    "input_schema": ({"type": "object"}, {"type": "array"}),
    "output_schema": ({"type": "number"}, {"type": "integer"}),
    "experiment_id": ("exp-1", "exp-2"),
    "source_run": ("runs:/1", "runs:/2"),
}


def test_it_lists_every_ingredient_field_of_the_model():
    # The matrix below parametrizes over INGREDIENTS: a new ingredient must join it.
    assert set(INGREDIENTS) == set(INGREDIENT_FIELDS)


@dataclass
class Subject:
    version: ModelVersion
    parent: ModelVersion
    other: ModelVersion


def make_subject(model, admin, level: str) -> Subject:
    """A version at `level` with every ingredient set, an artifact and a parent (and another
    version to make its parent instead)."""
    parent = version_create(actor=admin, model=model, params={"lr": 0.01})
    other = version_create(actor=admin, model=model, params={"lr": 0.02})
    version = version_create(
        actor=admin,
        model=model,
        lock_level=level,
        parents=[parent],
        artifacts={"model.bin": [b"weights-", b"v1"]},
        **{field: initial for field, (initial, _) in INGREDIENTS.items()},
    )
    return Subject(version=version, parent=parent, other=other)


def stored_bytes() -> dict[str, bytes]:
    root = Path(settings.ARTIFACT_ROOT)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def registry_state() -> dict[str, Any]:
    """Everything a refused change must leave as it was."""
    return {
        "versions": list(ModelVersion.objects.order_by("number").values()),
        "parents": sorted(
            (str(c), str(p)) for c, p in VersionParent.objects.values_list("child_id", "parent_id")
        ),
        "artifacts": list(Artifact.objects.order_by("pk").values()),
        "blobs": list(Blob.objects.order_by("pk").values("sha256", "size")),
        "models": list(RegisteredModel.objects.order_by("pk").values()),
        "version_history": ModelVersion.history.count(),
        "artifact_history": Artifact.history.count(),
        "model_history": RegisteredModel.history.count(),
        "events": ActivityEvent.objects.count(),
        "last_event": ActivityEvent.objects.order_by("pk").values_list("pk", flat=True).last() or 0,
        "bytes": stored_bytes(),
    }


# --- the matrix: level x actor x operation -------------------------------------------------


@dataclass(frozen=True)
class Operation:
    kind: str  # "guarded" (lock rule), "free" (metadata), "raise" or "lower"
    verb: str

    def run(self, actor, subject: Subject) -> None:
        raise NotImplementedError

    def took_effect(self, subject: Subject) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class EditIngredient(Operation):
    field: str = ""

    def run(self, actor, subject):
        version_update(actor=actor, version=subject.version, **{self.field: self.new_value})

    @property
    def new_value(self):
        return INGREDIENTS[self.field][1]

    def took_effect(self, subject):
        fresh = ModelVersion.objects.get(pk=subject.version.pk)
        return (
            getattr(fresh, self.field) == self.new_value and fresh.digest != subject.version.digest
        )


@dataclass(frozen=True)
class EditParents(Operation):
    def run(self, actor, subject):
        version_update(actor=actor, version=subject.version, parents=[subject.other])

    def took_effect(self, subject):
        return list(subject.version.parents.all()) == [subject.other]


@dataclass(frozen=True)
class AddArtifact(Operation):
    def run(self, actor, subject):
        artifact_put(actor=actor, version=subject.version, path="extra/card.md", source=[b"new"])

    def took_effect(self, subject):
        return subject.version.artifacts.filter(path="extra/card.md").exists()


@dataclass(frozen=True)
class RemoveArtifact(Operation):
    def run(self, actor, subject):
        artifact_delete(actor=actor, version=subject.version, path="model.bin")

    def took_effect(self, subject):
        return not subject.version.artifacts.exists()


@dataclass(frozen=True)
class DeleteVersion(Operation):
    def run(self, actor, subject):
        version_delete(actor=actor, version=subject.version)

    def took_effect(self, subject):
        return not ModelVersion.objects.filter(pk=subject.version.pk).exists()


@dataclass(frozen=True)
class EditMetadata(Operation):
    def run(self, actor, subject):
        version_update(
            actor=actor,
            version=subject.version,
            description="Retrained on March data",
            readme="# Fraud v3",
            tags={"team": "risk"},
        )

    def took_effect(self, subject):
        fresh = ModelVersion.objects.get(pk=subject.version.pk)
        return (fresh.description, fresh.tags, fresh.digest) == (
            "Retrained on March data",
            {"team": "risk"},
            subject.version.digest,
        )


@dataclass(frozen=True)
class SetLabel(Operation):
    def run(self, actor, subject):
        version_update(actor=actor, version=subject.version, label="3.0.0")

    def took_effect(self, subject):
        return ModelVersion.objects.get(pk=subject.version.pk).label == "3.0.0"


@dataclass(frozen=True)
class ChangeLevel(Operation):
    to: str = ""

    def run(self, actor, subject):
        set_level(actor=actor, version=subject.version, level=self.to)

    def took_effect(self, subject):
        return ModelVersion.objects.get(pk=subject.version.pk).lock_level == self.to


OPERATIONS: dict[str, Operation] = {
    **{
        f"edit-{field}": EditIngredient("guarded", "version.updated", field=field)
        for field in INGREDIENTS
    },
    "edit-parents": EditParents("guarded", "version.updated"),
    "add-artifact": AddArtifact("guarded", "artifact.added"),
    "remove-artifact": RemoveArtifact("guarded", "artifact.removed"),
    "delete-version": DeleteVersion("guarded", "version.deleted"),
    "edit-metadata": EditMetadata("free", "version.updated"),
    "set-label": SetLabel("free", "version.updated"),
}
# Raising goes one step up, lowering one step down (and closed straight to open).
LEVEL_CHANGES = {
    OPEN: {"raise-to-redact": REDACT, "raise-to-closed": CLOSED},
    REDACT: {"raise-to-closed": CLOSED, "lower-to-open": OPEN},
    CLOSED: {"lower-to-redact": REDACT, "lower-to-open": OPEN},
}
ACTORS = ("alice", "admin", "root", "carol", "mallory")
ORG_ADMINS = {"admin", "root"}


def expected_refusal(level: str, actor: str, op: Operation) -> tuple[type, str] | None:
    """SPEC 3.2 as a table: the error and the words of the rule, or None when allowed."""
    if actor == "mallory":
        return NotFound, "model fraud not found"
    if actor == "carol":
        return Forbidden, "you do not have write permission on model fraud"
    if op.kind == "guarded":
        if level == CLOSED:
            return Locked, "is closed: nobody may .*not even an admin"
        if level == REDACT and actor not in ORG_ADMINS:
            return Locked, "is at lock level redact: only org admins may"
    if op.kind == "lower" and actor not in ORG_ADMINS:
        return Forbidden, r"lowering a lock level \(\w+ to \w+\) needs an org admin"
    return None


def operations_at(level: str) -> dict[str, Operation]:
    ops = dict(OPERATIONS)
    for name, to in LEVEL_CHANGES[level].items():
        if name.startswith("raise"):
            ops[name] = ChangeLevel("raise", "lock.raised", to=to)
        else:
            ops[name] = ChangeLevel("lower", "lock.lowered", to=to)
    return ops


def check_operation(level, actor_name, actor, op, subject) -> str | None:
    """Run one operation; what differs from SPEC 3.2, or None."""
    refusal = expected_refusal(level, actor_name, op)
    before = registry_state()
    try:
        op.run(actor, subject)
    except Exception as exc:
        if refusal is None:
            return f"refused with {exc!r}, expected it to be allowed"
        error, rule = refusal
        if type(exc) is not error or not re.search(rule, exc.message):
            return f"refused with {exc!r}, expected {error.__name__} matching {rule!r}"
        if registry_state() != before:
            return "refused, but the stored state changed"
        return None
    if refusal is not None:
        return f"allowed, expected {refusal[0].__name__} matching {refusal[1]!r}"
    if not op.took_effect(subject):
        return "allowed, but it did not take effect"
    events = ActivityEvent.objects.filter(pk__gt=before["last_event"])
    got = list(events.values_list("verb", "actor_id", "version_id"))
    if got != [(op.verb, actor.pk, subject.version.pk)]:
        return f"allowed, but its events were {got}, expected one {op.verb} by {actor_name}"
    return None


@pytest.mark.parametrize("actor_name", ACTORS)
@pytest.mark.parametrize("level", [OPEN, REDACT, CLOSED])
def test_it_applies_the_lock_matrix(request, subtests, model, admin, level, actor_name):
    """Every operation of the matrix for one level and actor, each from the same stored
    state: a savepoint rolled back after each puts the version back as it was."""
    actor = request.getfixturevalue(actor_name)
    subject = make_subject(model, admin, level)
    for name, op in operations_at(level).items():
        with subtests.test(op=name), transaction.atomic():
            failure = check_operation(level, actor_name, actor, op, subject)
            transaction.set_rollback(True)
            assert failure is None, failure


def test_it_checks_every_operation_at_every_level():
    # The matrix loops over these: a new kind of change must join them.
    assert {len(operations_at(level)) for level in (OPEN, REDACT, CLOSED)} == {19}
    assert sum(o.kind == "guarded" for o in OPERATIONS.values()) == len(INGREDIENTS) + 4


# --- lock edge cases -----------------------------------------------------------------------


def test_it_lets_nobody_lower_a_closed_version_in_compliance_mode(model, alice, admin, root):
    version = version_create(actor=alice, model=model, lock_level=CLOSED, params={"lr": 0.1})
    org_update(actor=admin, org=model.org, closed_is_final=True)
    before = registry_state()

    for actor in (admin, root):
        for level in (REDACT, OPEN):
            with pytest.raises(Locked, match="compliance mode: a closed version can never be"):
                set_level(actor=actor, version=version, level=level)
    # Nor the shell: the model's own guard refuses the same.
    fresh = ModelVersion.objects.get(pk=version.pk)
    fresh.lock_level = OPEN
    with pytest.raises(Locked, match="compliance mode"):
        fresh.save()
    assert registry_state() == before


def test_it_still_lets_an_admin_lower_a_closed_version_outside_compliance_mode(model, admin):
    version = version_create(actor=admin, model=model, lock_level=CLOSED)
    set_level(actor=admin, version=version, level=OPEN)
    event = ActivityEvent.objects.order_by("-pk").first()
    assert ModelVersion.objects.get(pk=version.pk).lock_level == OPEN
    assert (event.verb, event.changes) == ("lock.lowered", {"lock_level": [CLOSED, OPEN]})


def test_it_refuses_to_turn_compliance_mode_off(acme, admin, root):
    org_update(actor=admin, org=acme, closed_is_final=True)
    for actor in (admin, root):
        with pytest.raises(Forbidden, match="compliance mode cannot be turned off"):
            org_update(actor=actor, org=acme, closed_is_final=False)
    acme.refresh_from_db()
    assert acme.closed_is_final is True


def test_it_counts_creating_below_the_org_default_as_lowering(model, acme, alice, admin):
    org_update(actor=admin, org=acme, default_lock_level=REDACT)
    # `model.org` still holds the old default: the service must read the org itself.
    assert model.org.default_lock_level == OPEN
    before = registry_state()

    with pytest.raises(Forbidden, match="below the organization's default redact.*org admins"):
        version_create(actor=alice, model=model, lock_level=OPEN)
    assert registry_state() == before

    by_default = version_create(actor=alice, model=model)
    above = version_create(actor=alice, model=model, lock_level=CLOSED)
    below = version_create(actor=admin, model=model, lock_level=OPEN)
    assert [v.lock_level for v in (by_default, above, below)] == [REDACT, CLOSED, OPEN]
    # The refused attempt took no number.
    assert [v.number for v in (by_default, above, below)] == [1, 2, 3]


def test_it_refuses_to_delete_a_model_that_holds_a_closed_version(model, admin, root):
    version_create(actor=admin, model=model, artifacts={"a.bin": [b"a"]})
    version_create(actor=admin, model=model, lock_level=CLOSED, artifacts={"b.bin": [b"b"]})
    before = registry_state()

    for actor in (admin, root):
        with pytest.raises(Locked, match="holds closed version 2: a model that holds a closed"):
            model_delete(actor=actor, model=model)
    with pytest.raises(Locked, match="holds closed version 2"):
        RegisteredModel.objects.get(pk=model.pk).delete()
    with pytest.raises(Locked, match="holds closed version 2"):
        RegisteredModel.objects.filter(pk=model.pk).delete()
    with pytest.raises(Locked, match="holds closed version 2"):
        model.org.models.all().delete()
    assert registry_state() == before


def test_it_keeps_a_writer_from_deleting_their_model_while_a_version_is_redact(acme, alice):
    own = model_create(actor=alice, org=acme, name="churn")
    version_create(actor=alice, model=own, lock_level=REDACT)
    before = registry_state()
    with pytest.raises(Locked, match="version 1 is at lock level redact: only org admins"):
        model_delete(actor=alice, model=own)
    assert registry_state() == before


def test_it_lets_the_owner_delete_a_model_whose_versions_are_open(acme, alice):
    own = model_create(actor=alice, org=acme, name="churn")
    version_create(actor=alice, model=own, artifacts={"m.bin": [b"m"]})
    model_delete(actor=alice, model=own)
    assert not RegisteredModel.objects.filter(pk=own.pk).exists()
    assert not ModelVersion.objects.filter(model_id=own.pk).exists()
    assert ActivityEvent.objects.order_by("-pk").first().verb == "model.deleted"


# --- ORM guards: what no caller may do, services or not ----------------------------------


@pytest.fixture
def closed(model, admin) -> Subject:
    return make_subject(model, admin, CLOSED)


def test_it_refuses_saving_changed_ingredients_of_a_closed_version(closed, subtests):
    before = registry_state()
    for field in [*INGREDIENTS, "digest"]:
        with subtests.test(field=field):
            version = ModelVersion.objects.get(pk=closed.version.pk)
            new = "sha256:" + "0" * 64 if field == "digest" else INGREDIENTS[field][1]
            setattr(version, field, new)
            with pytest.raises(Locked, match=rf"version 3 is closed: its ingredients \({field}\)"):
                version.save()
            assert registry_state() == before


def test_it_lets_the_orm_save_free_metadata_of_a_closed_version(closed):
    version = ModelVersion.objects.get(pk=closed.version.pk)
    version.description = "still editable"
    version.save()
    assert ModelVersion.objects.get(pk=version.pk).description == "still editable"


def test_it_refuses_queryset_updates_of_a_closed_version(closed, model, subtests):
    before = registry_state()
    for changes in (
        {"params": {"lr": 9}},
        {"digest": "sha256:" + "0" * 64},
        {"framework": "onnx", "description": "x"},
        {"lock_level": OPEN},
    ):
        with subtests.test(changes=changes):
            with pytest.raises(Locked, match="version 3 is closed"):
                ModelVersion.objects.filter(model=model).update(**changes)
            with pytest.raises(Locked, match="version 3 is closed"):
                model.versions.update(**changes)
            assert registry_state() == before


def test_it_refuses_deleting_a_closed_version_through_the_orm(closed, model):
    before = registry_state()
    with pytest.raises(Locked, match="version 3 is closed: it is never deleted"):
        ModelVersion.objects.get(pk=closed.version.pk).delete()
    with pytest.raises(Locked, match="version 3 is closed: it is never deleted"):
        ModelVersion.objects.filter(model=model).delete()
    with pytest.raises(Locked, match="version 3 is closed: it is never deleted"):
        model.versions.all().delete()
    assert registry_state() == before


def _artifact_orm_changes(subject: Subject):
    artifact = Artifact.objects.get(version=subject.version)
    open_version = subject.other
    blob = Blob.objects.get(pk=artifact.blob_id)

    def save_with(**fields):
        def run():
            fresh = Artifact.objects.get(pk=artifact.pk)
            for name, value in fields.items():
                setattr(fresh, name, value)
            fresh.save()

        return run

    return {
        "queryset-delete": lambda: Artifact.objects.filter(version=subject.version).delete(),
        "related-delete": lambda: subject.version.artifacts.all().delete(),
        "queryset-update-path": lambda: Artifact.objects.filter(pk=artifact.pk).update(path="x"),
        "instance-delete": lambda: Artifact.objects.get(pk=artifact.pk).delete(),
        "instance-save-path": save_with(path="renamed.bin"),
        "create": lambda: Artifact.objects.create(version=subject.version, path="n", blob=blob),
        "bulk-create": lambda: Artifact.objects.bulk_create(
            [Artifact(version=subject.version, path="n", blob=blob)]
        ),
        # Moving a file out of a closed version removes it from that version.
        "instance-save-move-out": save_with(version=open_version),
        "queryset-update-move-out": lambda: Artifact.objects.filter(pk=artifact.pk).update(
            version=open_version
        ),
        "instance-delete-after-retarget": lambda: _retargeted_delete(artifact.pk, open_version),
    }


def _retargeted_delete(pk, version) -> None:
    artifact = Artifact.objects.get(pk=pk)
    artifact.version = version
    artifact.delete()


def test_it_refuses_orm_changes_to_the_artifacts_of_a_closed_version(closed, subtests):
    before = registry_state()
    for change, run in _artifact_orm_changes(closed).items():
        with subtests.test(change=change):
            # A savepoint, as the shell's autocommit would give: some managers raise
            # mid-transaction.
            refusal = pytest.raises(Locked, match="version 3 is closed: its artifacts cannot be")
            with refusal, transaction.atomic():
                run()
            assert registry_state() == before


def test_it_refuses_to_move_an_artifact_into_a_closed_version(closed, admin):
    artifact_put(actor=admin, version=closed.other, path="n.bin", source=[b"n"])
    before = registry_state()
    with pytest.raises(Locked, match="version 3 is closed: its artifacts cannot be"):
        Artifact.objects.filter(version=closed.other).update(version=closed.version)
    moved = Artifact.objects.get(version=closed.other)
    moved.version = closed.version
    with pytest.raises(Locked, match="version 3 is closed: its artifacts cannot be"):
        moved.save()
    assert registry_state() == before


def _lineage_orm_changes(subject: Subject):
    child, parent, other = subject.version, subject.parent, subject.other

    def save_link_with(**fields):
        def run():
            link = VersionParent.objects.get(child=child)
            for name, value in fields.items():
                setattr(link, name, value)
            link.save()

        return run

    return {
        "bulk-create": lambda: VersionParent.objects.bulk_create(
            [VersionParent(child=child, parent=other)]
        ),
        "create": lambda: VersionParent.objects.create(child=child, parent=other),
        "queryset-delete": lambda: VersionParent.objects.filter(child=child).delete(),
        "instance-delete": lambda: VersionParent.objects.get(child=child).delete(),
        "m2m-add": lambda: child.parents.add(other),
        "m2m-remove": lambda: child.parents.remove(parent),
        "m2m-clear": lambda: child.parents.clear(),
        "m2m-set": lambda: child.parents.set([other]),
        "reverse-clear": lambda: parent.children.clear(),
        "reverse-add": lambda: other.children.add(child),
        "instance-save-parent": save_link_with(parent=other),
        # Moving the link to another child takes a parent away from the closed one.
        "instance-save-move-out": save_link_with(child=other),
        "queryset-update-move-out": lambda: VersionParent.objects.filter(child=child).update(
            child=other
        ),
    }


def test_it_refuses_orm_changes_to_the_parents_of_a_closed_version(closed, subtests):
    before = registry_state()
    for change, run in _lineage_orm_changes(closed).items():
        with subtests.test(change=change):
            refusal = pytest.raises(
                Locked, match=r"version 3 is closed: its ingredients \(parents\)"
            )
            with refusal, transaction.atomic():
                run()
            assert registry_state() == before


def test_it_refuses_to_move_a_link_onto_a_closed_child(closed, model, admin):
    # An open version's link retargeted at the closed version adds a parent to it.
    open_child = version_create(actor=admin, model=model, parents=[closed.other])
    before = registry_state()
    with pytest.raises(Locked, match=r"version 3 is closed: its ingredients \(parents\)"):
        VersionParent.objects.filter(child=open_child).update(child=closed.version)
    assert registry_state() == before
