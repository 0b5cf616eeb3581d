"""The API's hot reads as plain SQL: what a page of versions shows of the versions the
ORM chose for it (by visibility, query and cursor), given their ids.

Through the ORM these reads cost more than the rest of the page: building the querysets
(about 2 ms), preparing each of 200 ids once per query, and converting 200 rows of eight
JSON columns through JSONField (json.loads, where orjson takes a fifth of the time). The
figures are in the commits that brought them here. Each statement is pinned by a test to
the answer of the queryset it stands for (tests/api/test_sql.py), on SQLite and
PostgreSQL; change them together.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import JSONField, UUIDField

from approvals.models import Decision, RequestKind, RequestStatus
from registry.models import ModelVersion
from registry.sql import as_uuid, aware, json_value, run

# Prepares an id as a UUID column takes it: itself, or its hex where the database has no
# uuid type (SQLite).
_UUID = UUIDField()


def _run(sql: str, ids: Sequence[uuid.UUID], *params: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` for `params`, then the ids, whose placeholders come last (`{ids}`
    is one per id)."""
    db = connections[DEFAULT_DB_ALIAS]
    values = [_UUID.get_db_prep_value(pk, db) for pk in ids]
    return run(sql.format(ids=", ".join(["%s"] * len(values))), [*params, *values])


# A version's own columns, in the order version_json gives them.
VERSION_COLUMNS = (
    "number",
    "label",
    "stage",
    "lock_level",
    "digest",
    "description",
    "readme",
    "tags",
    "framework",
    "flavor",
    "params",
    "metrics",
    "environment",
    "datasets",
    "code_version",
    "input_schema",
    "output_schema",
    "experiment_id",
    "source_run",
)
# VERSIONS' columns, named as values() names them.
VERSION_ROW = (
    "id",
    *VERSION_COLUMNS,
    "created_at",
    "model__name",
    "branch__name",
    "created_by__username",
)
_JSON_COLUMNS = tuple(
    name for name in VERSION_COLUMNS if isinstance(ModelVersion._meta.get_field(name), JSONField)
)
VERSIONS = f"""
    SELECT v.id, {", ".join(f"v.{name}" for name in VERSION_COLUMNS)},
        v.created_at, m.name, b.name, u.username
    FROM registry_modelversion v
    JOIN registry_registeredmodel m ON m.id = v.model_id
    JOIN registry_branch b ON b.id = v.branch_id
    LEFT JOIN auth_user u ON u.id = v.created_by_id
    WHERE v.id IN ({{ids}})
"""


def page_versions(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """These versions' rows by id, each as
    ModelVersion.objects.filter(id__in=ids).values(*VERSION_ROW) gives it."""
    found = {}
    for row in _run(VERSIONS, ids):
        values = dict(zip(VERSION_ROW, row, strict=True))
        for name in _JSON_COLUMNS:
            values[name] = json_value(values[name])
        values["id"] = as_uuid(values["id"])
        values["created_at"] = aware(values["created_at"])
        found[values["id"]] = values
    return found


ARTIFACTS = """
    SELECT a.version_id, a.path, b.size, a.blob_id
    FROM registry_artifact a
    JOIN registry_blob b ON b.sha256 = a.blob_id
    WHERE a.version_id IN ({ids})
    ORDER BY a.version_id, a.path
"""


def page_artifacts(ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str, int, str]]:
    """(version id, path, size, sha256) of these versions' artifacts, by version and path:
    Artifact.objects.filter(version_id__in=ids).order_by("version_id", "path")
    .values_list("version_id", "path", "blob__size", "blob_id")."""
    return [(as_uuid(v), path, size, sha) for v, path, size, sha in _run(ARTIFACTS, ids)]


PARENTS = """
    SELECT vp.child_id, vp.parent_id, m.name, p.number, p.digest
    FROM registry_versionparent vp
    JOIN registry_modelversion p ON p.id = vp.parent_id
    JOIN registry_registeredmodel m ON m.id = p.model_id
    WHERE vp.child_id IN ({ids})
    ORDER BY p.model_id, p.number DESC
"""


def page_parents(ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID, str, int, str]]:
    """(child id, parent id, parent's model name, number, digest) of these versions'
    parents, by the parent's model and newest first: VersionParent.objects
    .filter(child_id__in=ids).order_by("parent__model_id", "-parent__number")
    .values_list("child_id", "parent_id", "parent__model__name", "parent__number",
    "parent__digest")."""
    return [
        (as_uuid(child), as_uuid(parent), model, number, digest)
        for child, parent, model, number, digest in _run(PARENTS, ids)
    ]


PENDING = """
    SELECT r.version_id, r.id, r.to_stage, u.username,
        (SELECT COUNT(*) FROM approvals_review v WHERE v.request_id = r.id AND v.decision = %s),
        r.required_approvals, r.created_at
    FROM approvals_stagechangerequest r
    LEFT JOIN auth_user u ON u.id = r.requester_id
    WHERE r.status = %s AND r.kind = %s AND r.version_id IN ({ids})
    ORDER BY r.created_at DESC, r.id DESC
"""


def page_pending(ids: Sequence[uuid.UUID]) -> list[tuple[Any, ...]]:
    """(version id, request id, to_stage, requester's name, approvals, required approvals,
    created_at) of these versions' pending stage requests, the newest first:
    StageChangeRequest.objects.pending().filter(version_id__in=ids, kind=RequestKind.STAGE)
    .with_approvals().order_by("-created_at", "-id").values_list(...) of these columns."""
    rows = _run(PENDING, ids, Decision.APPROVE, RequestStatus.PENDING, RequestKind.STAGE)
    return [
        (as_uuid(version), pk, to_stage, requester, approvals, required, aware(created_at))
        for version, pk, to_stage, requester, approvals, required, created_at in rows
    ]
