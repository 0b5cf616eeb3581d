"""Request and response shapes. Input schemas forbid unknown fields, so a read-only field
(stage, lock_level, digest, created_by, org, number, id, ...) sent by a client is refused
with 400 naming it, instead of being ignored or, worse, assigned."""

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from ninja import Schema
from pydantic import ConfigDict, Field, model_validator

# Numbers the database can hold (a larger one is simply not found, never a driver error).
Number = Annotated[int, Field(ge=1, le=2_147_483_647)]
Limit = Annotated[int, Field(ge=1, le=1_000_000)]  # served pages hold at most 200 rows
LockWord = Literal["open", "redact", "closed"]
StageWord = Literal["unassigned", "development", "staging", "production", "archived"]


def unstorable(text: str) -> bool:
    """NUL and lone surrogates: no database stores them (PostgreSQL refuses NUL in text)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refuse_unstorable(value: Any) -> None:
    if isinstance(value, str):
        if unstorable(value):
            raise ValueError("text may not contain NUL characters or lone surrogates")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key)
            _refuse_unstorable(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_unstorable(item)


def _is_flag(annotation: Any) -> bool:
    return annotation is bool or bool in get_args(annotation)


class In(Schema):
    """Input: unknown fields refused, text every database can store, and booleans that are
    JSON's true or false (pydantic would read "yes", "on", "1" and 1 as true)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _refuse_unstorable(data)
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                flag = _is_flag(field.annotation)
                if flag and value is not None and not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, not {value!r:.40}")
        return data


class ErrorBody(Schema):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(Schema):
    error: ErrorBody


# Registered models


class ModelCreateIn(In):
    name: str
    description: str = ""
    readme: str = ""
    visibility: Literal["organization", "private"] = "organization"
    tags: dict[str, Any] = {}
    required_approvals: Annotated[int, Field(ge=1, le=20)] | None = None


class ModelUpdateIn(In):
    name: str | None = None
    description: str | None = None
    readme: str | None = None
    visibility: Literal["organization", "private"] | None = None
    tags: dict[str, Any] | None = None
    required_approvals: Annotated[int, Field(ge=1, le=20)] | None = None
    owner: str | None = None


class ModelOut(Schema):
    id: int
    org: str
    name: str
    description: str
    readme: str
    owner: str | None
    visibility: str
    required_approvals: int | None
    tags: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class ModelPage(Schema):
    items: list[ModelOut]
    next: str | None


# Versions


class ParentRef(In):
    model: str
    number: Number


class VersionFields(In):
    label: str | None = None
    description: str | None = None
    readme: str | None = None
    tags: dict[str, Any] | None = None
    framework: str | None = None
    flavor: str | None = None
    params: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    datasets: list[Any] | None = None
    code_version: dict[str, Any] | None = None
    input_schema: Any = None
    output_schema: Any = None
    experiment_id: str | None = None
    source_run: str | None = None
    # A parent is {"model", "number"}, or "model@alias" for the version the alias names now.
    parents: list[ParentRef | str] | None = None


class VersionCreateIn(VersionFields):
    lock_level: LockWord | None = None
    branch: str = "main"


class VersionUpdateIn(VersionFields):
    pass


class ArtifactOut(Schema):
    path: str
    size: int
    sha256: str


class ArtifactPage(Schema):
    items: list[ArtifactOut]
    next: str | None


class ParentOut(Schema):
    id: str
    model: str
    number: int
    digest: str


class PendingOut(Schema):
    id: int
    to_stage: str
    requester: str | None
    approvals: int
    required_approvals: int
    created_at: datetime


class VersionOut(Schema):
    id: str
    model: str
    number: int
    label: str | None
    branch: str
    stage: str
    lock_level: str
    digest: str
    description: str
    readme: str
    tags: dict[str, Any]
    framework: str
    flavor: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    environment: dict[str, Any]
    datasets: list[Any]
    code_version: dict[str, Any]
    input_schema: Any = None
    output_schema: Any = None
    experiment_id: str
    source_run: str
    parents: list[ParentOut]
    artifacts: list[ArtifactOut]
    created_by: str | None
    created_at: datetime
    pending_request: PendingOut | None


class VersionPage(Schema):
    items: list[VersionOut]
    next: str | None


class LockIn(In):
    level: LockWord


# Aliases and state


class AliasIn(In):
    version: Number
    comment: str = ""


class AliasRequestIn(In):
    """Ask for review of pointing an alias at `version`, or (null) of removing it."""

    version: Number | None
    comment: str = ""


class AliasOut(Schema):
    name: str
    version: int
    protected: bool


class StateOut(Schema):
    at: datetime
    versions: dict[str, str]
    aliases: dict[str, int]


# Stage requests


class StageRequestIn(In):
    stage: StageWord
    comment: str = ""
    archive_existing: bool = False


class ReviewIn(In):
    comment: str = ""


class ReviewOut(Schema):
    reviewer: str | None
    decision: str
    comment: str
    created_at: datetime


class StageRequestOut(Schema):
    id: int
    kind: str
    org: str
    model: str
    version: int
    from_stage: str
    to_stage: str
    archive_existing: bool
    skips: bool
    moves_back: bool
    alias: str
    comment: str
    requester: str | None
    status: str
    approvals: int
    required_approvals: int
    reviews: list[ReviewOut]
    created_at: datetime
    decided_at: datetime | None


class StageRequestPage(Schema):
    items: list[StageRequestOut]
    next: str | None


# Comments and activity


class CommentIn(In):
    body: str


class CommentOut(Schema):
    id: int
    model: str
    version: int | None
    author: str | None
    body: str
    created_at: datetime


class CommentPage(Schema):
    items: list[CommentOut]
    next: str | None


class EventOut(Schema):
    seq: int
    created_at: datetime
    actor: str
    verb: str
    target_type: str
    target_id: str
    target: str
    model_id: int | None
    version_id: str | None
    changes: dict[str, Any]
    data: dict[str, Any]
    hash: str


class EventPage(Schema):
    items: list[EventOut]
    next: str | None


# The statuses of SPEC 4.2's error codes, documented on every operation.
ERRORS: dict = {frozenset({400, 401, 403, 404, 409, 413, 423}): ErrorOut}
