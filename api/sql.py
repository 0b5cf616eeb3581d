"""The API's hot reads as plain SQL: what a page of versions shows beyond its own rows.

The ORM builds these three statements in about 2 ms per page before it sends them, and
prepares each of a 200-version page's ids three times over: as much again as the rest of
the page (the figures are in the commit that brought this module). Each statement here is
pinned by a test to the answer of the queryset it stands for (tests/api/test_sql.py), on
SQLite and PostgreSQL; change them together.
"""

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import UUIDField

from approvals.models import Decision, RequestKind, RequestStatus

# Prepares an id as a UUID column takes it: itself, or its hex where the database has no
# uuid type (SQLite).
_UUID = UUIDField()


def _run(sql: str, ids: Sequence[uuid.UUID], *params: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` for `params`, then the ids, whose placeholders come last (`{ids}`
    is one per id)."""
    # The connection itself, not django.db.connection: each attribute read through that
    # proxy costs a lookup, eight times the preparing of an id.
    db = connections[DEFAULT_DB_ALIAS]
    values = [_UUID.get_db_prep_value(pk, db) for pk in ids]
    with db.cursor() as cursor:
        cursor.execute(sql.format(ids=", ".join(["%s"] * len(values))), [*params, *values])
        return cursor.fetchall()


def _version_id(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _aware(value: datetime.datetime) -> datetime.datetime:
    # SQLite gives the naive UTC time Django stored; PostgreSQL an aware one.
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


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
    return [(_version_id(v), path, size, sha) for v, path, size, sha in _run(ARTIFACTS, ids)]


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
        (_version_id(child), _version_id(parent), model, number, digest)
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
        (_version_id(version), pk, to_stage, requester, approvals, required, _aware(created_at))
        for version, pk, to_stage, requester, approvals, required, created_at in rows
    ]
