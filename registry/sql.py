"""The domain's hot statements as plain SQL: the caller's token with its user, an
organization with the caller's role in it, a model or a version (by number, alias or id)
with the caller's role in its org and the words granted on it, the members of an org with
theirs, the head of an org's activity chain (read under its lock, then advanced) and the
next number of a model's versions. One of the reads runs on every API request, the chain's
two statements on every write; built by the ORM (a queryset with its joins, a Subquery and
the grants' Exists; a locking queryset; an UPDATE read back) each cost more than the rest of
the request, or than the statement itself. The figures are in the commits that brought them here.

Rows become instances through Model.from_db, as the ORM makes them. Each statement is pinned
by tests/registry/test_sql.py to the answer of the queryset it stands for, on SQLite and
PostgreSQL: change them together.
"""

import datetime
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, UUIDField

from registry.models import (
    ActivityEvent,
    ApiToken,
    Branch,
    ModelVersion,
    Organization,
    RegisteredModel,
)


def aware(value: datetime.datetime | None) -> datetime.datetime | None:
    """A stored time as the ORM gives it: SQLite gives the naive UTC time Django stored,
    PostgreSQL an aware one."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.UTC)


def json_value(text: str | None) -> Any:
    """A JSON column's value, as JSONField reads it."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses (an integer past 64 bits, NaN)
        return json.loads(text)


def as_uuid(value: Any) -> uuid.UUID | None:
    """A UUID column's value: itself, or the UUID of its hex where the database has no uuid
    type (SQLite)."""
    return value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(value)


def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    # The connection itself, not django.db.connection: each attribute read through that
    # proxy costs a lookup.
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql: str, params: Sequence[Any]) -> int:
    """Run a statement that returns no rows; the number of rows it changed."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _reader(field: Any) -> Callable[[Any], Any] | None:
    """How a value of `field` comes from the cursor as the ORM would give it, or None when
    it comes as it is (a relation's value is read as the field it points at)."""
    kind = (field.target_field if field.is_relation else field).get_internal_type()
    if kind == "JSONField":
        return json_value
    if kind == "UUIDField":
        return as_uuid
    if kind == "DateTimeField":
        return aware
    if kind == "BooleanField":
        return lambda value: value if value is None else bool(value)
    return None


class Shape:
    """A model's row in a statement: its concrete columns under `alias` (or those of the
    fields named in `only`, the others deferred), and the instance made of them."""

    def __init__(self, model: type[Model], alias: str, only: Sequence[str] | None = None):
        fields = [
            f
            for f in model._meta.get_fields()
            if f.concrete and not f.many_to_many and (only is None or f.name in only)
        ]
        self.model = model
        self.names = [f.attname for f in fields]
        self.columns = ", ".join(f'{alias}."{f.column}"' for f in fields)
        self.readers = [_reader(f) for f in fields]
        self.width = len(fields)

    def make(self, row: Sequence[Any], start: int) -> Model | None:
        """The instance whose columns start at `start` of `row`; None for the nulls of an
        outer join."""
        values = row[start : start + self.width]
        if values[0] is None:
            return None
        values = [
            read(value) if read is not None else value
            for read, value in zip(self.readers, values, strict=True)
        ]
        return self.model.from_db(DEFAULT_DB_ALIAS, self.names, values)


def make_parts(row: Sequence[Any], parts: Sequence[Shape]) -> list[Model | None]:
    """The instances of a row that holds the columns of each of `parts` one after another."""
    made, at = [], 0
    for part in parts:
        made.append(part.make(row, at))
        at += part.width
    return made


def db_uuid(value: uuid.UUID) -> Any:
    """A UUID as a UUID column takes it: itself, or its hex where the database has no uuid
    type (SQLite)."""
    return _UUID.get_db_prep_value(value, connections[DEFAULT_DB_ALIAS])


_UUID = UUIDField()
User = get_user_model()

# The caller's role in the org at `{org}` of the statement, and the words granted on the
# model at `{model}` to the user at `{user}` (the caller's id, a parameter, unless said) or
# their teams, as bits (view 1, write 2, approve 4).
ROLE = "(SELECT role FROM registry_membership WHERE user_id = %s AND org_id = {org})"
GRANTS = """(
    SELECT COALESCE(SUM(DISTINCT CASE p.codename
        WHEN 'view_registeredmodel' THEN 1
        WHEN 'write_registeredmodel' THEN 2
        WHEN 'approve_registeredmodel' THEN 4
        ELSE 0 END), 0)
    FROM auth_permission p
    WHERE p.id IN (
        SELECT permission_id FROM registry_modeluserpermission
        WHERE user_id = {user} AND content_object_id = {model}
        UNION
        SELECT g.permission_id FROM registry_modelgrouppermission g
        JOIN auth_user_groups ug ON ug.group_id = g.group_id
        WHERE ug.user_id = {user} AND g.content_object_id = {model}
    )
)"""
BITS = {"view": 1, "write": 2, "approve": 4}


def access_columns(model: str, org: str) -> str:
    """The caller's role in the org at `org` and the bits granted to them on the model at
    `model`: two columns, and three parameters, each the caller's id."""
    return f"{ROLE.format(org=org)}, {GRANTS.format(model=model, user='%s')}"


_TOKEN, _USER = Shape(ApiToken, "t"), Shape(User, "u")
TOKEN = f"""
    SELECT {_TOKEN.columns}, {_USER.columns}
    FROM registry_apitoken t
    JOIN auth_user u ON u.id = t.user_id
    WHERE t.hashed = %s
"""


def token_with_user(hashed: str) -> ApiToken | None:
    """The token stored under `hashed`, with its user:
    ApiToken.objects.select_related("user").filter(hashed=hashed).first()."""
    rows = run(TOKEN, [hashed])
    if not rows:
        return None
    token = _TOKEN.make(rows[0], 0)
    token.user = _USER.make(rows[0], _TOKEN.width)
    return token


_ORG = Shape(Organization, "o")
ORG = f"""
    SELECT {_ORG.columns}, {ROLE.format(org="o.id")}
    FROM registry_organization o
    WHERE o.slug = %s
"""


def org_with_role(user_id: int | None, slug: str) -> tuple[Organization, str | None] | None:
    """The org `slug` and the role of the user `user_id` in it (None for none)."""
    rows = run(ORG, [user_id, slug])
    if not rows:
        return None
    return _ORG.make(rows[0], 0), rows[0][-1]


_MODEL, _MODEL_ORG = Shape(RegisteredModel, "m"), Shape(Organization, "o")
_OWNER, _CREATOR = Shape(User, "ow"), Shape(User, "cb")
_BRANCH = Shape(Branch, "b")
MODEL = f"""
    SELECT {_MODEL.columns}, {_MODEL_ORG.columns}, {_OWNER.columns}, {_CREATOR.columns},
        {access_columns(model="m.id", org="m.org_id")}
    FROM registry_registeredmodel m
    JOIN registry_organization o ON o.id = m.org_id
    LEFT JOIN auth_user ow ON ow.id = m.owner_id
    LEFT JOIN auth_user cb ON cb.id = m.created_by_id
    WHERE o.slug = %s AND m.name = %s
"""
MODEL_FOR_REGISTRATION = f"""
    SELECT {_MODEL.columns}, {_MODEL_ORG.columns}, {_BRANCH.columns},
        {access_columns(model="m.id", org="m.org_id")}
    FROM registry_registeredmodel m
    JOIN registry_organization o ON o.id = m.org_id
    LEFT JOIN registry_branch b ON b.model_id = m.id AND b.name = %s
    WHERE o.slug = %s AND m.name = %s
"""


def model_with_access(
    user_id: int | None, slug: str, name: str, branch: str | None = None
) -> tuple[RegisteredModel, str | None, int, Branch | None] | None:
    """The model `name` of the org `slug` with its org, owner and creator
    (RegisteredModel.objects.select_related("org", "owner", "created_by")), the role of the
    user `user_id` in the org and the bits granted to them on the model. With `branch` (to
    register a version on it), that branch of the model instead of the owner and creator,
    or None when it has none."""
    if branch is None:
        rows = run(MODEL, [user_id, user_id, user_id, slug, name])
    else:
        rows = run(MODEL_FOR_REGISTRATION, [user_id, user_id, user_id, branch, slug, name])
    if not rows:
        return None
    row = rows[0]
    model = _MODEL.make(row, 0)
    model.org = _MODEL_ORG.make(row, _MODEL.width)
    at = _MODEL.width + _MODEL_ORG.width
    found = None
    if branch is None:
        model.owner = _OWNER.make(row, at)
        model.created_by = _CREATOR.make(row, at + _OWNER.width)
    else:
        found = _BRANCH.make(row, at)
        if found is not None:
            found.model = model
    return model, row[-2], row[-1], found


MODEL_ACCESS = f"""
    SELECT m.visibility, {access_columns(model="m.id", org="m.org_id")}
    FROM registry_registeredmodel m
    WHERE m.id = %s
"""


def model_access(user_id: int | None, model_id: int) -> tuple[str, str | None, int] | None:
    """The stored visibility of the model `model_id`, and the role and grants of the user
    `user_id` on it."""
    rows = run(MODEL_ACCESS, [user_id, user_id, user_id, model_id])
    return rows[0] if rows else None


_VERSION, _VERSION_MODEL = Shape(ModelVersion, "v"), Shape(RegisteredModel, "m")
_VERSION_ORG, _VERSION_BRANCH = Shape(Organization, "o"), Shape(Branch, "b")
_VERSION_CREATOR = Shape(User, "cb")
_VERSION_PARTS = (_VERSION, _VERSION_MODEL, _VERSION_ORG, _VERSION_BRANCH, _VERSION_CREATOR)
_VERSION_FROM = f"""
    SELECT {", ".join(part.columns for part in _VERSION_PARTS)},
        {access_columns(model="m.id", org="m.org_id")}
    FROM registry_modelversion v
    JOIN registry_registeredmodel m ON m.id = v.model_id
    JOIN registry_organization o ON o.id = m.org_id
    JOIN registry_branch b ON b.id = v.branch_id
    LEFT JOIN auth_user cb ON cb.id = v.created_by_id
"""
VERSION = _VERSION_FROM + "WHERE o.slug = %s AND m.name = %s AND v.number = %s"
VERSION_BY_ID = _VERSION_FROM + "WHERE v.id = %s"
# The alias by its own key (model, name): by name alone, the join would read every model's
# alias of that name.
VERSION_BY_ALIAS = (
    _VERSION_FROM
    + "JOIN registry_alias a ON a.model_id = m.id AND a.version_id = v.id"
    + " WHERE o.slug = %s AND m.name = %s AND a.name = %s"
)


def _version_made(rows: list[tuple[Any, ...]]) -> tuple[ModelVersion, str | None, int] | None:
    if not rows:
        return None
    row = rows[0]
    version, model, org, branch, creator = make_parts(row, _VERSION_PARTS)
    model.org = org
    version.model = model
    version.branch = branch
    version.created_by = creator
    return version, row[-2], row[-1]


def version_with_access(
    user_id: int | None, slug: str, name: str, number: int
) -> tuple[ModelVersion, str | None, int] | None:
    """Version `number` of the model `name` of the org `slug`, with its model and org, its
    branch and its creator (ModelVersion.objects.select_related("model__org", "branch",
    "created_by")), and the role and grants of the user `user_id` on its model."""
    return _version_made(run(VERSION, [user_id, user_id, user_id, slug, name, number]))


def version_by_alias_with_access(
    user_id: int | None, slug: str, name: str, alias: str
) -> tuple[ModelVersion, str | None, int] | None:
    """version_with_access for the version that the alias `alias` of the model `name` of
    the org `slug` points at."""
    return _version_made(run(VERSION_BY_ALIAS, [user_id, user_id, user_id, slug, name, alias]))


def version_by_id_with_access(
    user_id: int | None, version_id: uuid.UUID
) -> tuple[ModelVersion, str | None, int] | None:
    """version_with_access for the version `version_id`."""
    return _version_made(run(VERSION_BY_ID, [user_id, user_id, user_id, db_uuid(version_id)]))


# The head of an org's activity chain (registry/services/activity.py appends to it). On
# PostgreSQL the read takes the row lock that orders appends, held until commit: NO KEY, the
# lock the head's own UPDATE takes, as an append changes no key. SQLite has no row locks:
# its write transactions (BEGIN IMMEDIATE) already run one at a time.
CHAIN_HEAD = "SELECT seq, head FROM registry_activitychain WHERE org_id = %s"
CHAIN_ADVANCE = "UPDATE registry_activitychain SET seq = %s, head = %s WHERE org_id = %s"


def chain_head_locked(org_id: int) -> tuple[int, str] | None:
    """The (seq, head) of the org's chain, locked for the caller's transaction; None when
    the org has no chain yet."""
    connection = connections[DEFAULT_DB_ALIAS]
    lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_no_key_update else ""
    rows = run(CHAIN_HEAD + lock, [org_id])
    return rows[0] if rows else None


# An event appended to the chain: every column but the id, each value prepared by its own
# field as the ORM's insert prepares it (Field.get_db_prep_save).
_EVENT_FIELDS = [f for f in ActivityEvent._meta.concrete_fields if not f.primary_key]
EVENT_INSERT = "INSERT INTO registry_activityevent ({columns}) VALUES ({values})".format(
    columns=", ".join(f'"{f.column}"' for f in _EVENT_FIELDS),
    values=", ".join(["%s"] * len(_EVENT_FIELDS)),
)


def event_insert(values: dict[str, Any]) -> ActivityEvent:
    """Insert the event whose fields (by attname: every one but the id) are `values`, and
    return it as stored (ActivityEvent.objects.create(**values), made by Model.from_db)."""
    connection = connections[DEFAULT_DB_ALIAS]
    params = [f.get_db_prep_save(values[f.attname], connection) for f in _EVENT_FIELDS]
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(EVENT_INSERT + " RETURNING id", params)
            pk = cursor.fetchone()[0]
        else:
            cursor.execute(EVENT_INSERT, params)
            pk = cursor.lastrowid
    names = ["id", *(f.attname for f in _EVENT_FIELDS)]
    return ActivityEvent.from_db(
        DEFAULT_DB_ALIAS, names, [pk, *(values[f.attname] for f in _EVENT_FIELDS)]
    )


def chain_advance(org_id: int, seq: int, head: str) -> None:
    """Move the org's chain head to the event just appended (seq, hash)."""
    if execute(CHAIN_ADVANCE, [seq, head, org_id]) != 1:
        raise RuntimeError(f"the activity chain of org {org_id} is gone")


MEMBERS = f"""
    SELECT {_USER.columns}, mb.role, {GRANTS.format(model="%s", user="u.id")}
    FROM registry_membership mb
    JOIN auth_user u ON u.id = mb.user_id
    WHERE mb.org_id = %s AND u.is_active
    ORDER BY u.id
"""


def members_with_access(org_id: int, model_id: int) -> list[tuple[Any, str, int]]:
    """The active members of the org `org_id` by id, each with their role and the bits
    granted to them on the model `model_id`: what model_with_access reads for one caller,
    for all of them at once."""
    return [
        (_USER.make(row, 0), row[-2], row[-1]) for row in run(MEMBERS, [model_id, model_id, org_id])
    ]


# A model's next version number. The UPDATE takes the sequence's row lock, held until
# commit: concurrent registrations of one model queue here, and each gets the number it took.
NEXT_NUMBER = """
    UPDATE registry_versionsequence SET last_number = last_number + 1
    WHERE model_id = %s
    RETURNING last_number
"""


def next_version_number(model_id: int) -> int | None:
    """Take the next number of the model's versions; None when the model is gone."""
    rows = run(NEXT_NUMBER, [model_id])
    return rows[0][0] if rows else None
