"""What an MLflow answer shows of its models and versions beside their rows, as plain SQL
(STYLE.md, "Plain over clever"): a model's aliases, the newest version of each of its
stages, and a version's aliases and pending stage request.

The ORM built these as nested prefetches, and building them cost more than the rest of the
request: a get of one model spent 5 of its 8 ms of CPU there (bench/2026-12-06-side-by-side.md,
run 3). tests/mlflow_api/test_sql.py pins each statement to the queryset it stands for, on
SQLite and PostgreSQL: change them together.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence

from approvals.models import RequestKind, RequestStatus
from registry.sql import as_uuid, run

MODEL_ALIASES = """
SELECT a.model_id, a.name, v.number
FROM registry_alias a JOIN registry_modelversion v ON v.id = a.version_id
WHERE a.model_id IN ({ids})
ORDER BY a.model_id, a.name
"""

# MLflow's latest_versions: of each model, the newest version in each stage it has.
LATEST_VERSIONS = """
SELECT v.id
FROM registry_modelversion v
WHERE v.model_id IN ({ids})
  AND v.number = (SELECT MAX(w.number) FROM registry_modelversion w
                  WHERE w.model_id = v.model_id AND w.stage = v.stage)
"""

VERSION_ALIASES = """
SELECT a.version_id, a.name FROM registry_alias a
WHERE a.version_id IN ({ids})
ORDER BY a.name
"""

PENDING_STAGE_REQUESTS = """
SELECT r.version_id, r.id, r.to_stage FROM approvals_stagechangerequest r
WHERE r.version_id IN ({ids}) AND r.status = %s AND r.kind = %s
ORDER BY r.id
"""


def _in(sql: str, ids: Sequence[object]) -> str:
    return sql.format(ids=", ".join(["%s"] * len(ids)))


def _uuids(ids: Sequence[uuid.UUID]) -> list[str]:
    # The hex: what SQLite stores for a UUIDField, and a uuid PostgreSQL reads.
    return [pk.hex for pk in ids]


def model_aliases(model_ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """{model id: [(alias, version number)] by alias name}."""
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    if model_ids:
        for model_id, name, number in run(_in(MODEL_ALIASES, model_ids), list(model_ids)):
            found[model_id].append((name, number))
    return found


def latest_version_ids(model_ids: Sequence[int]) -> list[uuid.UUID]:
    """The newest version of each stage of each model."""
    if not model_ids:
        return []
    return [as_uuid(pk) for (pk,) in run(_in(LATEST_VERSIONS, model_ids), list(model_ids))]


def version_aliases(version_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """{version id: its alias names, sorted}."""
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    if version_ids:
        for pk, name in run(_in(VERSION_ALIASES, version_ids), _uuids(version_ids)):
            found[as_uuid(pk)].append(name)
    return found


def pending_stage_requests(version_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, str]]:
    """{version id: (id, stage asked) of its pending stage request, the oldest if several}."""
    found: dict[uuid.UUID, tuple[int, str]] = {}
    if version_ids:
        params = [*_uuids(version_ids), RequestStatus.PENDING.value, RequestKind.STAGE.value]
        for pk, request_id, to_stage in run(_in(PENDING_STAGE_REQUESTS, version_ids), params):
            found.setdefault(as_uuid(pk), (request_id, to_stage))
    return found
