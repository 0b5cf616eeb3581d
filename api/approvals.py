"""Stage change requests and their reviews (SPEC 3.4) over HTTP."""

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Status

from api import schemas as s
from api.pagination import paginate
from api.render import request_json, requests_qs
from approvals.models import RequestKind, StageChangeRequest
from approvals.services import (
    alias_request_create,
    request_approve,
    request_cancel,
    request_create,
    request_reject,
)
from registry.errors import NotFound
from registry.permissions import (
    get_model_for_user,
    get_org_for_user,
    get_version_for_user,
    model_access,
)

router = Router(tags=["approvals"])
E = s.ERRORS
VERSION = "/orgs/{org}/models/{model}/versions/{number}"


def _request_for_user(user, request_id: s.Number, requests: QuerySet) -> StageChangeRequest:
    """The request of `requests` with its model, 404 unless the user may view the model (the
    access read as every fetch reads it: one plain statement, where the visible_to filter
    costs a query built for lists). A review or a cancellation is given the id: its
    service reads the request, and answers 404 as this does."""
    found = requests.select_related("model").filter(pk=request_id).first()
    if found is None or not model_access(user, found.model).view:
        raise NotFound(f"request #{request_id} not found")
    return found


@router.get(VERSION + "/stage-requests", response={200: s.StageRequestPage, **E})
def list_stage_requests(
    request: HttpRequest,
    org: str,
    model: str,
    number: s.Number,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    version = get_version_for_user(request.auth, org, model, number)
    requests = requests_qs().filter(version=version, kind=RequestKind.STAGE)
    return paginate(requests, keys=["-id"], cursor=cursor, limit=limit, render=request_json)


@router.post(VERSION + "/stage-requests", response={201: s.StageRequestOut, **E})
def create_stage_request(
    request: HttpRequest, org: str, model: str, number: s.Number, payload: s.StageRequestIn
):
    version = get_version_for_user(request.auth, org, model, number, "write")
    created = request_create(
        actor=request.auth,
        version=version,
        to_stage=payload.stage,
        comment=payload.comment,
        archive_existing=payload.archive_existing,
    )
    return Status(201, request_json(created, new=True))


@router.post(
    "/orgs/{org}/models/{model}/aliases/{alias}/requests", response={201: s.StageRequestOut, **E}
)
def create_alias_request(
    request: HttpRequest, org: str, model: str, alias: str, payload: s.AliasRequestIn
):
    """The way a writer moves or removes a protected alias: a request reviewed like a stage
    change (SPEC 3.4), which appears among the pending approvals."""
    if payload.version is None:
        found, version = get_model_for_user(request.auth, org, model, "write"), None
    else:
        version = get_version_for_user(request.auth, org, model, payload.version, "write")
        found = version.model
    created = alias_request_create(
        actor=request.auth, model=found, name=alias, version=version, comment=payload.comment
    )
    return Status(201, request_json(created, new=True))


@router.get("/stage-requests/{request_id}", response={200: s.StageRequestOut, **E})
def get_stage_request(request: HttpRequest, request_id: s.Number):
    return request_json(_request_for_user(request.auth, request_id, requests_qs()))


@router.post("/stage-requests/{request_id}/approve", response={200: s.StageRequestOut, **E})
def approve_stage_request(request: HttpRequest, request_id: s.Number, payload: s.ReviewIn):
    done = request_approve(actor=request.auth, request=request_id, comment=payload.comment)
    return request_json(done)


@router.post("/stage-requests/{request_id}/reject", response={200: s.StageRequestOut, **E})
def reject_stage_request(request: HttpRequest, request_id: s.Number, payload: s.ReviewIn):
    done = request_reject(actor=request.auth, request=request_id, comment=payload.comment)
    return request_json(done)


@router.post("/stage-requests/{request_id}/cancel", response={200: s.StageRequestOut, **E})
def cancel_stage_request(request: HttpRequest, request_id: s.Number, payload: s.ReviewIn):
    done = request_cancel(actor=request.auth, request=request_id, comment=payload.comment)
    return request_json(done)


@router.get("/orgs/{org}/approvals/pending", response={200: s.StageRequestPage, **E})
def pending_approvals(
    request: HttpRequest, org: str, cursor: str | None = None, limit: s.Limit | None = None
):
    found = get_org_for_user(request.auth, org)
    queue = requests_qs().reviewable_by(request.auth).filter(model__org=found)
    return paginate(queue, keys=["-id"], cursor=cursor, limit=limit, render=request_json)
