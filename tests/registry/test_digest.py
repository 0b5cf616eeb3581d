"""A version's digest (SPEC 3.5): deterministic over its ingredients, blind to free metadata,
and frozen while the version is closed."""

import hashlib
import re

import pytest

from registry.audit import canonical_json
from registry.digest import compute_digest
from registry.errors import Locked
from registry.models import INGREDIENT_FIELDS, ActivityEvent, LockLevel, ModelVersion
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.orgs import org_update
from registry.services.versions import version_create, version_set_lock_level, version_update

pytestmark = pytest.mark.django_db

# A full set of ingredients, and for each a different value.
BASE = {
    "framework": "sklearn",
    "flavor": "python_function",
    "environment": {"python_version": "3.11", "requirements": "scikit-learn==1.5"},
    "datasets": [{"name": "cards", "uri": "s3://data/cards", "version": "1"}],
    "code_version": {"repo": "git@example.com:fraud", "commit": "abc123", "path": "train.py"},
    "params": {"lr": 0.1, "depth": 6},
    "metrics": {"auc": 0.91},
    "input_schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
    "output_schema": {"type": "number"},
    "experiment_id": "exp-1",
    "source_run": "runs:/1",
}
CHANGED = {
    "framework": "xgboost",
    "flavor": "onnx",
    "environment": {"python_version": "3.12", "requirements": "scikit-learn==1.5"},
    "datasets": [{"name": "cards", "uri": "s3://data/cards", "version": "2"}],
    "code_version": {"repo": "git@example.com:fraud", "commit": "def456", "path": "train.py"},
    "params": {"lr": 0.1, "depth": 7},
    "metrics": {"auc": 0.92},
    "input_schema": {"type": "object", "properties": {"amount": {"type": "integer"}}},
    "output_schema": {"type": "integer"},
    "experiment_id": "exp-2",
    "source_run": "runs:/2",
}
ARTIFACTS = {"model.bin": b"weights", "conf/settings.json": b"{}"}


def test_it_covers_every_ingredient():
    assert set(BASE) == set(CHANGED) == set(INGREDIENT_FIELDS)
    assert all(BASE[f] != CHANGED[f] for f in INGREDIENT_FIELDS)


@pytest.fixture
def parent(model, alice):
    return version_create(actor=alice, model=model, params={"lr": 1})


def register(model, actor, *, ingredients=BASE, artifacts=ARTIFACTS, parents=(), **extra):
    return version_create(
        actor=actor,
        model=model,
        parents=list(parents),
        artifacts={path: [body] for path, body in artifacts.items()},
        **ingredients,
        **extra,
    )


def fresh(version) -> ModelVersion:
    return ModelVersion.objects.get(pk=version.pk)


def test_it_is_sha256_over_the_canonical_manifest(model, alice, parent):
    version = register(model, alice, parents=[parent])
    manifest = {
        **BASE,
        "artifacts": [
            {"path": path, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            for path, body in sorted(ARTIFACTS.items())
        ],
        "parents": [parent.digest],
    }
    expected = "sha256:" + hashlib.sha256(canonical_json(manifest).encode()).hexdigest()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", version.digest)
    assert version.digest == expected == compute_digest(version)


def test_it_is_deterministic(model, alice, parent):
    first = register(model, alice, parents=[parent])
    # Same ingredients given in another order, other free metadata, lock level and label.
    second = version_create(
        actor=alice,
        model=model,
        parents=[parent],
        artifacts={path: [body] for path, body in reversed(ARTIFACTS.items())},
        lock_level=LockLevel.CLOSED,
        label="2.0.0",
        description="the same model again",
        tags={"retrain": "no"},
        **dict(reversed(BASE.items())),
    )
    assert first.digest == second.digest
    assert list(ModelVersion.objects.by_digest(first.digest).order_by("number")) == [first, second]


def test_it_changes_when_an_ingredient_changes(model, alice, subtests):
    base = register(model, alice)
    for field in INGREDIENT_FIELDS:
        with subtests.test(field=field):
            other = register(model, alice, ingredients={**BASE, field: CHANGED[field]})
            assert other.digest != base.digest
            version_update(actor=alice, version=base, **{field: CHANGED[field]})
            assert fresh(base).digest == other.digest
            # ... and back again: the digest is a function of the ingredients.
            version_update(actor=alice, version=base, **{field: BASE[field]})
            assert fresh(base).digest == base.digest


def test_it_changes_when_the_artifacts_change(model, alice, subtests):
    base = register(model, alice)
    for name, artifacts in {
        "content": {"model.bin": b"other weights", "conf/settings.json": b"{}"},
        "path": {"model2.bin": b"weights", "conf/settings.json": b"{}"},
        "one-fewer": {"model.bin": b"weights"},
        "one-more": {**ARTIFACTS, "extra.txt": b""},
    }.items():
        with subtests.test(change=name):
            assert register(model, alice, artifacts=artifacts).digest != base.digest


def test_it_follows_artifact_uploads_and_removals(model, alice):
    version = register(model, alice)
    original = version.digest
    artifact_put(actor=alice, version=version, path="model.bin", source=[b"retrained"])
    replaced = fresh(version).digest
    artifact_delete(actor=alice, version=version, path="model.bin")
    removed = fresh(version).digest
    artifact_put(actor=alice, version=version, path="model.bin", source=[b"weights"])
    assert len({original, replaced, removed}) == 3
    assert fresh(version).digest == original


def test_it_changes_when_the_parents_change(model, alice, parent):
    other_parent = version_create(actor=alice, model=model, params={"lr": 2})
    orphan = register(model, alice)
    child = register(model, alice, parents=[parent])
    both = register(model, alice, parents=[parent, other_parent])
    assert len({orphan.digest, child.digest, both.digest}) == 3

    version_update(actor=alice, version=orphan, parents=[other_parent, parent])
    assert fresh(orphan).digest == both.digest
    version_update(actor=alice, version=orphan, parents=[])
    assert fresh(orphan).digest == register(model, alice).digest


def test_it_ignores_free_metadata(model, alice, subtests):
    version = register(model, alice)
    for changes in (
        {"description": "now with a description"},
        {"readme": "# Fraud\n\nBetter."},
        {"tags": {"team": "risk"}},
        {"label": "1.2.3"},
    ):
        with subtests.test(field=next(iter(changes))):
            version_update(actor=alice, version=version, **changes)
            assert fresh(version).digest == version.digest
            event = ActivityEvent.objects.order_by("pk").last()
            assert event.verb == "version.updated"
            assert "digest" not in event.changes


def test_it_ignores_the_lock_level(model, alice, admin):
    version = register(model, alice)
    version_set_lock_level(actor=alice, version=version, level=LockLevel.CLOSED)
    version_set_lock_level(actor=admin, version=version, level=LockLevel.OPEN)
    assert fresh(version).digest == version.digest


def test_it_stays_frozen_while_closed(model, alice, admin, parent):
    version = register(model, alice, parents=[parent], lock_level=LockLevel.CLOSED)
    frozen = version.digest

    for change in ({"params": {"lr": 9}}, {"parents": []}):
        with pytest.raises(Locked, match="is closed: nobody may"):
            version_update(actor=admin, version=version, **change)
    with pytest.raises(Locked, match="is closed: nobody may"):
        artifact_put(actor=admin, version=version, path="model.bin", source=[b"x"])
    # Nor may the ORM write another digest.
    stale = fresh(version)
    stale.digest = "sha256:" + "0" * 64
    with pytest.raises(Locked, match="is closed: its ingredients \\(digest\\)"):
        stale.save()
    with pytest.raises(Locked, match="is closed: its digest never change"):
        ModelVersion.objects.filter(pk=version.pk).update(digest="sha256:" + "0" * 64)
    # A parent edited later does not reach into the closed child's identity.
    version_update(actor=alice, version=parent, params={"lr": 3})
    assert fresh(version).digest == frozen
    # Compliance mode on, free metadata edited: still the same digest.
    org_update(actor=admin, org=model.org, closed_is_final=True)
    version_update(actor=alice, version=version, description="audited")
    assert fresh(version).digest == frozen
