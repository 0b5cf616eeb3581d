"""The API's hot read as plain SQL: what a page of versions shows of the versions the ORM
chose for it (by visibility, query and cursor), given their ids, in one statement.

Through the ORM this read cost more than the rest of the page: building the querysets
(about 2 ms), preparing each of 200 ids once per query, and converting 200 rows of eight
JSON columns through JSONField (json.loads, where orjson takes a fifth of the time); and as
four statements (rows, artifacts, parents, pending requests) its round trips were half of a
small page. The figures are in the commits that brought them here. The list of one model's
versions reads the page by the model's index instead, and on PostgreSQL beside the model
with the caller's access: the model's read was a round trip of its own. The statements are
pinned by tests to the answers of the querysets and reads they stand for
(tests/api/test_sql.py), on SQLite and PostgreSQL; change them together.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import JSONField

from approvals.models import Decision, RequestKind, RequestStatus
from registry import query
from registry.models import ModelVersion, RegisteredModel
from registry.sql import (
    Shape,
    access_columns,
    as_uuid,
    aware,
    db_uuid,
    json_value,
    model_with_access,
    run,
    version_by_alias_with_access,
    version_with_access,
)


def _run(sql: str, ids: Sequence[uuid.UUID], *params: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` for `params`, then the ids, whose placeholders come last (`{ids}`
    is one per id)."""
    values = [db_uuid(pk) for pk in ids]
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
    "model_id",
)
_JSON_COLUMNS = tuple(
    name for name in VERSION_COLUMNS if isinstance(ModelVersion._meta.get_field(name), JSONField)
)
# A version's artifacts and parents come as a JSON array each, made by the database's own
# JSON functions, which PostgreSQL and SQLite name differently. They are sorted here: SQLite
# 3.40 cannot order an aggregate. The newest pending stage request is joined: on PostgreSQL
# as a LATERAL subquery (SQLite has none), on SQLite by the id a subquery finds.
#
# Every related row is reached through the version, by key, so that a page costs the same
# whatever the size of the tables: joined by a plain join to a page's few ids, PostgreSQL's
# planner chose to hash whole tables (every model, branch and stage change request; 1.7 ms
# for ten versions among 10,000, 0.3 ms read like this).
_ARRAYS = {
    "postgresql": "CAST(json_agg(json_build_array({items})) AS text)",
    "sqlite": "json_group_array(json_array({items}))",
}
_NEWEST_PENDING = """
        SELECT q.id FROM approvals_stagechangerequest q
        WHERE q.version_id = v.id AND q.status = %s AND q.kind = %s
        ORDER BY q.created_at DESC, q.id DESC
        LIMIT 1"""
_PENDING = {
    "postgresql": f"LEFT JOIN LATERAL ({_NEWEST_PENDING}) newest ON true\n"
    "    LEFT JOIN approvals_stagechangerequest r ON r.id = newest.id",
    "sqlite": f"LEFT JOIN approvals_stagechangerequest r ON r.id = ({_NEWEST_PENDING})",
}
VERSIONS = """
    SELECT v.id, {columns}, v.created_at,
        (SELECT m.name FROM registry_registeredmodel m WHERE m.id = v.model_id),
        (SELECT b.name FROM registry_branch b WHERE b.id = v.branch_id),
        (SELECT u.username FROM auth_user u WHERE u.id = v.created_by_id),
        v.model_id,
        (SELECT {artifacts}
         FROM registry_artifact a JOIN registry_blob bl ON bl.sha256 = a.blob_id
         WHERE a.version_id = v.id),
        (SELECT {parents}
         FROM registry_versionparent vp
         JOIN registry_modelversion p ON p.id = vp.parent_id
         JOIN registry_registeredmodel pm ON pm.id = p.model_id
         WHERE vp.child_id = v.id),
        r.id, r.to_stage,
        (SELECT ru.username FROM auth_user ru WHERE ru.id = r.requester_id),
        (SELECT COUNT(*) FROM approvals_review rv
         WHERE rv.request_id = r.id AND rv.decision = %s),
        r.required_approvals, r.created_at
    FROM registry_modelversion v
    {pending}
"""
_SELECTS = {
    vendor: VERSIONS.format(
        columns=", ".join(f"v.{name}" for name in VERSION_COLUMNS),
        artifacts=array.format(items="a.path, bl.size, a.blob_id"),
        parents=array.format(items="vp.parent_id, pm.name, p.number, p.digest, p.model_id"),
        pending=_PENDING[vendor],
    )
    for vendor, array in _ARRAYS.items()
}
_STATEMENTS = {vendor: select + "WHERE v.id IN ({ids})" for vendor, select in _SELECTS.items()}
# A model's versions below a number, newest first, with columns equal to words (a query
# of plain equalities: registry.query.column_equalities): the page of a model's versions,
# read by the index on (model, number) without a first read of the page's ids.
_OF_MODEL = "WHERE v.model_id = {model}{equal} AND v.number < %s ORDER BY v.number DESC LIMIT %s"
# What the access needs of a model (registry.permissions.read_with_model).
_MODEL = Shape(RegisteredModel, "m", only=("id", "name", "org", "visibility"))
# The same page beside its model and the caller's access on it (their role in its org and
# the words granted to them: registry.sql.access_columns, read once), joined LATERAL: one
# statement where the fetch of the model and its page were two. A model without such
# versions is one row with a null page; `page.number` is v.number.
_MODEL_PAGE = f"""
    WITH found AS MATERIALIZED (
        SELECT {_MODEL.columns}, {access_columns(model="m.id", org="m.org_id")}
        FROM registry_registeredmodel m
        JOIN registry_organization o ON o.id = m.org_id
        WHERE o.slug = %s AND m.name = %s
    )
    SELECT found.*, page.*
    FROM found
    LEFT JOIN LATERAL ({{page}}) page ON true
    ORDER BY page.number DESC
"""
# One version, by its number or by an alias, with its model and the caller's access on it,
# beside the version as a page shows it: one statement where the fetch and the page were two.
# `found_version` is the version's id under a name of its own (the model's is `id` too).
_VERSION_KEY = Shape(ModelVersion, "v", only=("id", "model"))
_VERSION_PAGE = f"""
    WITH found AS MATERIALIZED (
        SELECT {_VERSION_KEY.columns}, {_MODEL.columns},
            {access_columns(model="m.id", org="m.org_id")}, v.id AS found_version
        FROM registry_modelversion v
        JOIN registry_registeredmodel m ON m.id = v.model_id
        JOIN registry_organization o ON o.id = m.org_id
        {{named}}
    )
    SELECT found.*, page.*
    FROM found
    CROSS JOIN LATERAL ({{page}}WHERE v.id = found.found_version) page
"""
_BY_NUMBER = "WHERE o.slug = %s AND m.name = %s AND v.number = %s"
# The alias by its own key (model, name), as registry.sql.VERSION_BY_ALIAS reads it.
_BY_ALIAS = """JOIN registry_alias a ON a.model_id = m.id AND a.version_id = v.id
        WHERE o.slug = %s AND m.name = %s AND a.name = %s"""
_PAGE_PARAMS = (Decision.APPROVE, RequestStatus.PENDING, RequestKind.STAGE)
# Past every number a version can have (the column's range).
_PAST_NUMBERS = 2**31


def page_versions(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """These versions by id, each as ModelVersion.objects.filter(id__in=ids)
    .values(*VERSION_ROW) gives its row, and with
    - "artifacts": (path, size, sha256) of each artifact, by path:
      Artifact.objects.filter(version_id=...).order_by("path")
      .values_list("path", "blob__size", "blob_id");
    - "parents": (id, model name, number, digest, model id) of each parent, by model and
      newest first: VersionParent.objects.filter(child_id=...)
      .order_by("parent__model_id", "-parent__number")
      .values_list("parent_id", "parent__model__name", "parent__number", "parent__digest",
      "parent__model_id");
    - "pending": (id, to_stage, requester's name, approvals, required approvals,
      created_at) of the newest pending stage request, or None:
      StageChangeRequest.objects.pending().filter(version_id=..., kind=RequestKind.STAGE)
      .with_approvals().order_by("-created_at", "-id"), the first."""
    statement = _STATEMENTS[connections[DEFAULT_DB_ALIAS].vendor]
    return {found["id"]: found for found in _made(_run(statement, ids, *_PAGE_PARAMS))}


def model_page_versions(
    model_id: int, before: int | None, limit: int, equal: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The versions of the model `model_id` numbered below `before` (every one: None) whose
    columns `equal` names hold its words, newest first, at most `limit`, each as
    page_versions gives it: page_versions of ModelVersion.objects.filter(model_id=model_id,
    number__lt=before, **equal).order_by("-number")[:limit], in that order."""
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    where, words = _of_model("%s", before, limit, equal)
    return _made(run(_SELECTS[vendor] + where, [*_PAGE_PARAMS, model_id, *words]))


def model_with_page(
    user_id: int, slug: str, name: str, before: int | None, limit: int, equal: dict[str, str]
) -> tuple[tuple[RegisteredModel, str | None, int] | None, list[dict[str, Any]]]:
    """The model `name` of the org `slug` with the role and grant bits of the user `user_id`
    on it, as registry.sql.model_with_access reads them (None: no such model), and the page
    model_page_versions(its id, before, limit, equal) ([] without the model): on
    PostgreSQL in one statement, where the model has its id, name, org and visibility only;
    on SQLite, which has no LATERAL, in those two reads. The caller checks the access before
    it shows the page (registry.permissions.read_with_model)."""
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    if vendor != "postgresql":
        found = model_with_access(user_id, slug, name)
        if found is None:
            return None, []
        model, role, bits, _ = found
        return (model, role, bits), model_page_versions(model.pk, before, limit, equal)
    where, words = _of_model("found.id", before, limit, equal)
    statement = _MODEL_PAGE.format(page=_SELECTS[vendor] + where)
    rows = run(statement, [user_id, user_id, user_id, slug, name, *_PAGE_PARAMS, *words])
    if not rows:
        return None, []
    at = _MODEL.width
    role, bits = rows[0][at : at + 2]
    page = [row[at + 2 :] for row in rows if row[at + 2] is not None]
    return (_MODEL.make(rows[0], 0), role, bits), _made(page)


def version_with_page(
    user_id: int, slug: str, name: str, *, number: int | None = None, alias: str | None = None
) -> tuple[tuple[ModelVersion, str | None, int] | None, dict[str, Any] | None]:
    """Version `number` of the model `name` of the org `slug`, or the version its alias
    `alias` points at, with its model and the role and grant bits of the user `user_id` on
    it, as registry.sql.version_with_access (or version_by_alias_with_access) reads them
    (None: no such version), and that version as page_versions gives it (None without
    it): on PostgreSQL in one statement, where the version has its id and model only, and
    the model its id, name, org and visibility; on SQLite in those two reads, where a
    version deleted between them is no such version. The caller checks the access before
    it shows the version (registry.permissions.read_with_version)."""
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    if vendor != "postgresql":
        if alias is None:
            found = version_with_access(user_id, slug, name, number)
        else:
            found = version_by_alias_with_access(user_id, slug, name, alias)
        page = None if found is None else page_versions([found[0].pk]).get(found[0].pk)
        return (None, None) if page is None else (found, page)
    named = _BY_NUMBER if alias is None else _BY_ALIAS
    statement = _VERSION_PAGE.format(named=named, page=_SELECTS[vendor])
    key = number if alias is None else alias
    rows = run(statement, [user_id, user_id, user_id, slug, name, key, *_PAGE_PARAMS])
    if not rows:
        return None, None
    row = rows[0]
    version = _VERSION_KEY.make(row, 0)
    version.model = _MODEL.make(row, _VERSION_KEY.width)
    at = _VERSION_KEY.width + _MODEL.width
    role, bits = row[at : at + 2]
    return (version, role, bits), _made([row[at + 3 :]])[0]


def _of_model(
    model: str, before: int | None, limit: int, equal: dict[str, str] | None
) -> tuple[str, list[Any]]:
    """The WHERE of a page of the model at `model` (a column, or the placeholder of its id,
    which comes before the parameters returned here)."""
    columns = sorted(equal or {})
    if not set(columns) <= set(query.EQUALITY_COLUMNS):
        raise ValueError(f"not a column of a plain equality: {columns}")
    equalities = "".join(f" AND v.{column} = %s" for column in columns)
    below = _PAST_NUMBERS if before is None else before
    words = [equal[column] for column in columns] if equal else []
    return _OF_MODEL.format(model=model, equal=equalities), [*words, below, limit]


def _made(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Each row of VERSIONS as page_versions describes it, in the rows' order."""
    found = []
    width = len(VERSION_ROW)
    for row in rows:
        values = dict(zip(VERSION_ROW, row[:width], strict=True))
        for name in _JSON_COLUMNS:
            values[name] = json_value(values[name])
        values["id"] = as_uuid(values["id"])
        values["created_at"] = aware(values["created_at"])
        artifacts, parents, request, *pending = row[width:]
        values["artifacts"] = sorted(
            (path, size, sha256) for path, size, sha256 in json_value(artifacts) or ()
        )
        ordered = sorted(json_value(parents) or (), key=lambda p: (p[4], -p[2]))
        values["parents"] = [(as_uuid(pk), name, n, d, model) for pk, name, n, d, model in ordered]
        values["pending"] = None
        if request is not None:
            to_stage, requester, approvals, required, created_at = pending
            values["pending"] = (
                request,
                to_stage,
                requester,
                approvals,
                required,
                aware(created_at),
            )
        found.append(values)
    return found
