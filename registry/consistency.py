"""The stored versions against the activity log (SPEC 3.2, 3.7): `verify_activity --state`.

The log is replayed in `seq` order: `version.created` registers a version with its number,
lock level, label and digest and puts it in `unassigned`; `stage.applied`, `lock.raised|
lowered`, `version.updated` (label, digest) and `artifact.added|removed` (digest) change
it; `version.deleted` and `model.deleted` remove it. What the replay ends with must be what
the rows say, and each stored digest must be the one its stored ingredients, artifacts and
parents give. A change that went around the services (a base manager, a plain QuerySet,
loaddata, raw SQL with the triggers dropped, a closed version lowered, edited and closed
again by `save()`) shows as a difference, named with its model, version and field.

A parent's digest enters a child's digest as it was when the child's digest was last
computed (a parent edited since leaves its children's digests as they were), so the replay
keeps, for each version, its parents' digests as the log had them at that moment.

Each organization costs a fixed number of queries (events, versions, artifacts, parents,
models), each streamed in chunks, whatever the number of versions.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from registry.digest import digest_of, manifest
from registry.models import (
    INGREDIENT_FIELDS,
    ActivityEvent,
    Artifact,
    ModelVersion,
    Organization,
    RegisteredModel,
    Stage,
    VersionParent,
)

CHUNK_SIZE = 2000

REPLAYED_VERBS = (
    "version.created",
    "version.updated",
    "version.deleted",
    "model.deleted",
    "stage.applied",
    "lock.raised",
    "lock.lowered",
    "artifact.added",
    "artifact.removed",
)
# The verbs whose `changes` may carry a version's new digest.
DIGEST_VERBS = ("version.created", "version.updated", "artifact.added", "artifact.removed")
# Compared between the replay and the rows, in this order.
COMPARED = ("model_id", "number", "stage", "lock_level", "label", "digest")


@dataclass
class Logged:
    """A version as the activity log has it."""

    model_id: int
    number: int
    stage: str
    lock_level: str | None
    label: str | None
    digest: str | None
    # Its parents' digests when its own digest was last set (None: a parent the log lacks).
    parent_digests: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class Drift:
    """One stored value that the activity log does not explain."""

    model: str
    number: int
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.model} v{self.number} {self.field}: {self.detail}"


def _new(changes: dict[str, Any], key: str) -> Any:
    return changes.get(key, [None, None])[1]


def replay(org: Organization, parents: dict[UUID, list[UUID]]) -> dict[UUID, Logged]:
    """The org's versions as its activity log leaves them, by version id."""
    logged: dict[UUID, Logged] = {}
    of_model: dict[int, set[UUID]] = defaultdict(set)
    events = (
        ActivityEvent.objects.filter(org=org, verb__in=REPLAYED_VERBS)
        .order_by("seq")
        .values_list("verb", "model_id", "version_id", "changes")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for verb, model_id, version_id, changes in events:
        if verb == "model.deleted":
            for pk in of_model.pop(model_id, ()):
                logged.pop(pk, None)
            continue
        if verb == "version.created":
            logged[version_id] = Logged(
                model_id=model_id,
                number=_new(changes, "number"),
                stage=Stage.UNASSIGNED.value,
                lock_level=_new(changes, "lock_level"),
                label=_new(changes, "label"),
                digest=None,
            )
            of_model[model_id].add(version_id)
        version = logged.get(version_id)
        if version is None:
            continue  # a version the log never registered: its row, if any, is named
        if verb == "version.deleted":
            del logged[version_id]
            of_model[version.model_id].discard(version_id)
        elif verb == "stage.applied":
            version.stage = _new(changes, "stage")
        elif verb in ("lock.raised", "lock.lowered"):
            version.lock_level = _new(changes, "lock_level")
        elif verb == "version.updated" and "label" in changes:
            version.label = _new(changes, "label")
        if verb in DIGEST_VERBS and "digest" in changes:
            version.digest = _new(changes, "digest")
            version.parent_digests = [
                logged[p].digest if p in logged else None for p in parents.get(version_id, ())
            ]
    return logged


def state_drift(org: Organization) -> tuple[int, list[Drift]]:
    """How many stored versions of `org` were compared with its replayed activity log, and
    every difference: a stored stage, lock level, label, number or digest other than the
    log's, a digest its stored ingredients do not give, a version the log never registered
    or one it never deleted."""
    parents: dict[UUID, list[UUID]] = defaultdict(list)
    links = VersionParent.objects.filter(child__model__org=org).values_list("child_id", "parent_id")
    for child_id, parent_id in links.iterator(chunk_size=CHUNK_SIZE):
        parents[child_id].append(parent_id)
    logged = replay(org, parents)
    names = dict(RegisteredModel.objects.filter(org=org).values_list("pk", "name"))
    artifacts = _artifacts(org)
    rows = (
        ModelVersion.objects.filter(model__org=org)
        .order_by("model_id", "number")
        .values("id", *COMPARED, *INGREDIENT_FIELDS)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    drifts: list[Drift] = []
    compared = 0
    for row in rows:
        compared += 1
        name = names.get(row["model_id"], f"model #{row['model_id']}")
        version = logged.pop(row["id"], None)
        if version is None:
            drifts.append(
                Drift(name, row["number"], "version", "stored, but the activity log has none")
            )
            continue
        drifts.extend(_differences(name, row, version, artifacts.get(row["id"], ())))
    for version in sorted(logged.values(), key=lambda v: (v.model_id, v.number)):
        name = names.get(version.model_id, f"model #{version.model_id}")
        drifts.append(
            Drift(
                name,
                version.number,
                "version",
                "missing, but the activity log never deleted it",
            )
        )
    return compared, drifts


def _artifacts(org: Organization) -> dict[UUID, list[tuple[str, str, int]]]:
    found: dict[UUID, list[tuple[str, str, int]]] = defaultdict(list)
    rows = (
        Artifact.objects.filter(version__model__org=org)
        .order_by()
        .values_list("version_id", "path", "blob_id", "blob__size")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for version_id, path, sha256, size in rows:
        found[version_id].append((path, sha256, size))
    return found


def _differences(
    name: str, row: dict[str, Any], version: Logged, artifacts: Iterable[tuple[str, str, int]]
) -> list[Drift]:
    drifts = []
    for column in COMPARED:
        stored, said = row[column], getattr(version, column)
        if stored != said:
            shown = "model" if column == "model_id" else column
            drifts.append(
                Drift(
                    name,
                    row["number"],
                    shown,
                    f"{stored!r} stored, {said!r} by the activity log",
                )
            )
    if None in version.parent_digests:
        return drifts  # a parent the log lacks is named itself; its digest then is unknown
    ingredients = {column: row[column] for column in INGREDIENT_FIELDS}
    recomputed = digest_of(manifest(ingredients, artifacts, version.parent_digests))
    if recomputed != row["digest"]:
        drifts.append(
            Drift(
                name,
                row["number"],
                "ingredients",
                f"the stored ingredients, artifacts and parents give {recomputed}, "
                f"not the stored digest {row['digest']}",
            )
        )
    return drifts
