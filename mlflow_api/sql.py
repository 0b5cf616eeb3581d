"""What an MLflow answer shows of models and versions, as plain SQL (STYLE.md, "Plain over
clever"): a model with its creator's name and its aliases, a version with its model's name,
its creator's, its aliases and its pending stage request, each in one statement, and the
newest version of each stage of some models.

The ORM built these as nested prefetches, and building them cost more than the rest of the
request: a get of one model spent 5 of its 8 ms of CPU there (bench/2026-12-06-side-by-side.md,
run 3). Making instances of whole rows (a version, its model, its creator), to show a few
columns, then cost 2 of the 8 ms of a page of 100 versions: the rows become ShownModel and
ShownVersion, what render.py renders. The ORM still chooses the page of a search (filters.py);
these read what the page shows, by id.

tests/mlflow_api/test_sql.py pins each statement to the querysets it stands for, on SQLite
and PostgreSQL: change them together.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from approvals.models import RequestKind, RequestStatus
from registry.sql import as_uuid, aware, json_value, run

# Times are read as text: Django reads PostgreSQL's timestamps through a loader written in
# Python, at 4 us a value (0.8 ms for a page of 100 versions); datetime.fromisoformat reads
# the text in a tenth of that (_moment() below).

# A model as model_json shows it: one row per alias it has (one with a null alias when it
# has none).
MODELS = """
SELECT m.id, m.name, m.description, m.tags, CAST(m.created_at AS TEXT),
    CAST(m.updated_at AS TEXT), u.username, a.name, v.number
FROM registry_registeredmodel m
LEFT JOIN auth_user u ON u.id = m.created_by_id
LEFT JOIN registry_alias a ON a.model_id = m.id
LEFT JOIN registry_modelversion v ON v.id = a.version_id
WHERE m.id IN ({ids})
ORDER BY m.id, a.name
"""

# A version as version_json shows it: one row per alias it has (one with a null alias when
# it has none), with its pending stage request (one at most: the constraint
# request_one_pending_per_version). `{where}` chooses the versions.
VERSIONS = """
SELECT v.id, v.model_id, m.name, v.number, v.stage, v.lock_level, v.description, v.tags,
    v.source_run, CAST(v.created_at AS TEXT), CAST(v.updated_at AS TEXT), u.username,
    r.id, r.to_stage, a.name
FROM registry_modelversion v
JOIN registry_registeredmodel m ON m.id = v.model_id
LEFT JOIN auth_user u ON u.id = v.created_by_id
LEFT JOIN approvals_stagechangerequest r
    ON r.version_id = v.id AND r.status = %s AND r.kind = %s
LEFT JOIN registry_alias a ON a.version_id = v.id
WHERE {where}
ORDER BY v.model_id, v.number DESC, a.name
"""
BY_ID = VERSIONS.format(where="v.id IN ({ids})")
# MLflow's latest_versions: of each model, the newest version in each stage it has.
NEWEST_OF_EACH_STAGE = VERSIONS.format(
    where="""v.model_id IN ({ids})
    AND v.number = (SELECT MAX(w.number) FROM registry_modelversion w
                    WHERE w.model_id = v.model_id AND w.stage = v.stage)"""
)
# A page of one model's versions, newest first.
OF_MODEL = VERSIONS.format(
    where="""v.id IN (SELECT w.id FROM registry_modelversion w WHERE w.model_id = %s
                  ORDER BY w.number DESC LIMIT %s OFFSET %s)"""
)
BY_ALIAS = VERSIONS.format(
    where="v.id = (SELECT b.version_id FROM registry_alias b WHERE b.model_id = %s AND b.name = %s)"
)


@dataclass(slots=True)
class ShownVersion:
    """What MLflow's ModelVersion message shows of a version (render.version_json)."""

    id: uuid.UUID
    model_id: int
    model_name: str
    number: int
    stage: str
    lock_level: str
    description: str
    tags: dict[str, Any]
    source_run: str
    created_at: datetime
    updated_at: datetime
    creator: str  # the username, "" when the creator is gone
    # (id, stage asked) of its pending stage request
    pending_request: tuple[int, str] | None
    aliases: list[str] = field(default_factory=list)  # by name


@dataclass(slots=True)
class ShownModel:
    """What MLflow's RegisteredModel message shows of a model (render.model_json)."""

    id: int
    name: str
    description: str
    tags: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    creator: str  # the username, "" when the creator is gone
    aliases: list[tuple[str, int]] = field(default_factory=list)  # (alias, number) by alias
    # the newest version of each stage, newest first
    latest_versions: list[ShownVersion] = field(default_factory=list)


def _moment(text: str) -> datetime:
    """A time read as text (CAST(... AS TEXT)): PostgreSQL's with its offset, SQLite's the
    naive UTC time Django stored."""
    return aware(datetime.fromisoformat(text))


def _in(sql: str, ids: Sequence[object]) -> str:
    return sql.format(ids=", ".join(["%s"] * len(ids)))


def _uuids(ids: Sequence[uuid.UUID]) -> list[str]:
    # The hex: what SQLite stores for a UUIDField, and a uuid PostgreSQL reads.
    return [pk.hex for pk in ids]


def _versions(sql: str, params: Sequence[Any]) -> list[ShownVersion]:
    """The versions of VERSIONS' rows, by model and newest first."""
    found: dict[uuid.UUID, ShownVersion] = {}
    pending = [RequestStatus.PENDING.value, RequestKind.STAGE.value]
    for row in run(sql, [*pending, *params]):
        (pk, model_id, model_name, number, stage, lock_level, description, tags, source_run,
         created_at, updated_at, username, request_id, to_stage, alias) = row  # fmt: skip
        pk = as_uuid(pk)
        version = found.get(pk)
        if version is None:
            version = found[pk] = ShownVersion(
                id=pk,
                model_id=model_id,
                model_name=model_name,
                number=number,
                stage=stage,
                lock_level=lock_level,
                description=description,
                tags=json_value(tags),
                source_run=source_run,
                created_at=_moment(created_at),
                updated_at=_moment(updated_at),
                creator=username or "",
                pending_request=None if request_id is None else (request_id, to_stage),
            )
        if alias is not None:
            version.aliases.append(alias)
    return list(found.values())


def versions(ids: Sequence[uuid.UUID]) -> list[ShownVersion]:
    """The versions of `ids` that exist, in the order of `ids`."""
    if not ids:
        return []
    found = {version.id: version for version in _versions(_in(BY_ID, ids), _uuids(ids))}
    return [found[pk] for pk in ids if pk in found]


def latest_versions(model_ids: Sequence[int]) -> list[ShownVersion]:
    """The newest version of each stage of each model, by model and newest first."""
    if not model_ids:
        return []
    return _versions(_in(NEWEST_OF_EACH_STAGE, model_ids), list(model_ids))


def model_versions(model_id: int, offset: int, limit: int) -> list[ShownVersion]:
    """`limit` versions of the model `model_id` from the `offset`th, newest first."""
    return _versions(OF_MODEL, [model_id, limit, offset])


def aliased_version(model_id: int, alias: str) -> ShownVersion | None:
    """The version that the alias `alias` of the model `model_id` points at, or None."""
    found = _versions(BY_ALIAS, [model_id, alias])
    return found[0] if found else None


def models(ids: Sequence[int]) -> list[ShownModel]:
    """The models of `ids` that exist, in the order of `ids`, with their latest versions:
    two statements whatever their number."""
    if not ids:
        return []
    found: dict[int, ShownModel] = {}
    for row in run(_in(MODELS, ids), list(ids)):
        pk, name, description, tags, created_at, updated_at, username, alias, number = row
        model = found.get(pk)
        if model is None:
            model = found[pk] = ShownModel(
                id=pk,
                name=name,
                description=description,
                tags=json_value(tags),
                created_at=_moment(created_at),
                updated_at=_moment(updated_at),
                creator=username or "",
            )
        if alias is not None:
            model.aliases.append((alias, number))
    latest: dict[int, list[ShownVersion]] = defaultdict(list)
    for version in latest_versions(list(found)):
        latest[version.model_id].append(version)
    for model in found.values():
        model.latest_versions = latest[model.id]
    return [found[pk] for pk in ids if pk in found]
