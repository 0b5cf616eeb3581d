"""Branches, promotion to main and lineage (SPEC 3.6, 4.2). Each view parses, fetches with
authorisation (404 before 403), calls one service and renders."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from api import schemas as s
from api.pagination import paginate
from api.render import version_json
from registry.errors import NotFound
from registry.lineage import version_lineage
from registry.models import Branch, RegisteredModel
from registry.permissions import get_model_for_user, get_version_for_user
from registry.services.branches import branch_create, branch_set_protection, version_promote

router = Router(tags=["branches"])
E = s.ERRORS
MODEL = "/orgs/{org}/models/{model}"
VERSION = MODEL + "/versions/{number}"


class BranchIn(s.In):
    name: str


class ProtectionIn(s.In):
    protected: bool


class PromoteIn(s.In):
    label: str | None = None
    description: str | None = None


class BranchOut(s.Schema):
    name: str
    protected: bool
    created_by: str | None
    created_at: datetime


class BranchPage(s.Schema):
    items: list[BranchOut]
    next: str | None


class LineageNode(s.Schema):
    id: str
    org: str
    model: str
    number: int
    label: str | None
    branch: str
    protected: bool
    stage: str
    digest: str


class BranchState(s.Schema):
    name: str
    protected: bool


class LineageOut(s.Schema):
    version: LineageNode
    branch: BranchState
    parents: list[LineageNode]
    children: list[LineageNode]
    datasets: list[Any]
    code_version: dict[str, Any]
    experiment_id: str


def branch_json(branch: Branch) -> dict[str, Any]:
    return {
        "name": branch.name,
        "protected": branch.protected,
        "created_by": branch.created_by.get_username() if branch.created_by else None,
        "created_at": branch.created_at,
    }


def _branch(model: RegisteredModel, name: str) -> Branch:
    found = Branch.objects.select_related("created_by").filter(model=model, name=name).first()
    if found is None:
        raise NotFound(f"branch {name} of model {model.name} not found")
    return found


@router.get(MODEL + "/branches", response={200: BranchPage, **E})
def list_branches(
    request: HttpRequest,
    org: str,
    model: str,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found = get_model_for_user(request.auth, org, model)
    branches = Branch.objects.filter(model=found).select_related("created_by")
    return paginate(branches, keys=["name"], cursor=cursor, limit=limit, render=branch_json)


@router.post(MODEL + "/branches", response={201: BranchOut, **E})
def create_branch(request: HttpRequest, org: str, model: str, payload: BranchIn):
    found = get_model_for_user(request.auth, org, model, "write")
    branch = branch_create(actor=request.auth, model=found, name=payload.name)
    return Status(201, branch_json(_branch(found, branch.name)))


@router.put(MODEL + "/branches/{branch}/protection", response={200: BranchOut, **E})
def set_protection(request: HttpRequest, org: str, model: str, branch: str, payload: ProtectionIn):
    found = get_model_for_user(request.auth, org, model, "admin")
    changed = branch_set_protection(
        actor=request.auth, branch=_branch(found, branch), protected=payload.protected
    )
    return branch_json(_branch(found, changed.name))


@router.post(VERSION + "/promote", response={201: s.VersionOut, **E})
def promote_version(
    request: HttpRequest, org: str, model: str, number: s.Number, payload: PromoteIn
):
    version = get_version_for_user(request.auth, org, model, number, "write")
    promoted = version_promote(actor=request.auth, version=version, **payload.model_dump())
    return Status(201, version_json(promoted, request.auth))


@router.get(VERSION + "/lineage", response={200: LineageOut, **E})
def get_lineage(request: HttpRequest, org: str, model: str, number: s.Number):
    version = get_version_for_user(request.auth, org, model, number)
    return version_lineage(version, request.auth)
