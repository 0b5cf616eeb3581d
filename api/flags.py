"""Flags (SPEC 3.10, post-market monitoring) over HTTP: anyone who may view a version raises
one, e.g. a monitoring job citing the digest it saw; writers resolve them."""

from datetime import datetime
from typing import Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Status
from pydantic import model_validator

from api import schemas as s
from api.pagination import paginate
from registry.errors import NotFound
from registry.models import Flag
from registry.permissions import get_org_for_user, get_version_for_user
from registry.services.flags import flag_raise, flag_resolve

router = Router(tags=["flags"])
E = s.ERRORS
VERSION = "/orgs/{org}/models/{model}/versions/{number}"
SeverityWord = Literal["low", "medium", "high", "critical"]
StatusWord = Literal["open", "resolved"]


class FlagIn(s.In):
    severity: SeverityWord = "medium"
    summary: str
    details: str = ""
    digest: str | None = None


class ResolveIn(s.In):
    """`comment` and `resolution` are two names for the same text; send one."""

    comment: str | None = None
    resolution: str | None = None

    @model_validator(mode="after")
    def _one_text(self) -> "ResolveIn":
        if self.comment is not None and self.resolution is not None:
            raise ValueError("send comment or resolution, not both")
        return self

    @property
    def text(self) -> str:
        return self.comment if self.comment is not None else self.resolution or ""


class FlagOut(s.Schema):
    id: int
    org: str
    model: str
    version: int
    severity: str
    summary: str
    details: str
    digest: str
    status: str
    raised_by: str | None
    created_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str


class FlagPage(s.Schema):
    items: list[FlagOut]
    next: str | None


def _name(user) -> str | None:
    return user.get_username() if user is not None else None


def flags_qs() -> QuerySet:
    return Flag.objects.select_related("model__org", "version", "raised_by", "resolved_by")


def flag_json(flag: Flag) -> dict[str, Any]:
    return {
        "id": flag.pk,
        "org": flag.model.org.slug,
        "model": flag.model.name,
        "version": flag.version.number,
        "severity": flag.severity,
        "summary": flag.summary,
        "details": flag.details,
        "digest": flag.digest,
        "status": "open" if flag.is_open else "resolved",
        "raised_by": _name(flag.raised_by),
        "created_at": flag.created_at,
        "resolved_by": _name(flag.resolved_by),
        "resolved_at": flag.resolved_at,
        "resolution": flag.resolution,
    }


def _by_status(flags: QuerySet, status: StatusWord | None) -> QuerySet:
    if status == "open":
        return flags.open()
    if status == "resolved":
        return flags.filter(resolved_at__isnull=False)
    return flags


def _flag_for_user(user, flag_id: int) -> Flag:
    found = flags_qs().visible_to(user).filter(pk=flag_id).first()
    if found is None:
        raise NotFound(f"flag #{flag_id} not found")
    return found


@router.get(VERSION + "/flags", response={200: FlagPage, **E})
def list_flags(
    request: HttpRequest,
    org: str,
    model: str,
    number: s.Number,
    status: StatusWord | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    version = get_version_for_user(request.auth, org, model, number)
    flags = _by_status(flags_qs().filter(version=version), status)
    return paginate(flags, keys=["-id"], cursor=cursor, limit=limit, render=flag_json)


@router.post(VERSION + "/flags", response={201: FlagOut, **E})
def raise_flag(request: HttpRequest, org: str, model: str, number: s.Number, payload: FlagIn):
    version = get_version_for_user(request.auth, org, model, number)
    flag = flag_raise(actor=request.auth, version=version, **payload.model_dump())
    return Status(201, flag_json(flags_qs().get(pk=flag.pk)))


@router.get("/flags/{flag_id}", response={200: FlagOut, **E})
def get_flag(request: HttpRequest, flag_id: s.Number):
    return flag_json(_flag_for_user(request.auth, flag_id))


@router.post("/flags/{flag_id}/resolve", response={200: FlagOut, **E})
def resolve_flag(request: HttpRequest, flag_id: s.Number, payload: ResolveIn):
    found = _flag_for_user(request.auth, flag_id)
    flag_resolve(actor=request.auth, flag=found, resolution=payload.text)
    return flag_json(flags_qs().get(pk=found.pk))


@router.get("/orgs/{org}/flags", response={200: FlagPage, **E})
def list_org_flags(
    request: HttpRequest,
    org: str,
    status: StatusWord | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found = get_org_for_user(request.auth, org)
    flags = _by_status(flags_qs().visible_to(request.auth).filter(model__org=found), status)
    return paginate(flags, keys=["-id"], cursor=cursor, limit=limit, render=flag_json)
