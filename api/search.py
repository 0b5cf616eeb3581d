"""Finding versions: by query (SPEC 3.9) across the models of an org, and by digest."""

from django.http import HttpRequest
from ninja import Router

from api import schemas as s
from api.render import versions_page
from registry import query
from registry.models import ModelVersion
from registry.permissions import org_and_role_for_user

router = Router(tags=["search"])
E = s.ERRORS


SEARCH_KEYS = ("model__name", "-number")


@router.get("/orgs/{org}/versions", response={200: s.VersionPage, **E})
def search_versions(
    request: HttpRequest,
    org: str,
    q: str | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found, role = org_and_role_for_user(request.auth, org)
    visible = ModelVersion.objects.visible_in(request.auth, found, role=role)
    versions = query.search_versions(visible, q)
    return versions_page(versions, request.auth, keys=SEARCH_KEYS, cursor=cursor, limit=limit)


@router.get("/versions/by-digest/{digest}", response={200: s.VersionPage, **E})
def versions_by_digest(
    request: HttpRequest, digest: str, cursor: str | None = None, limit: s.Limit | None = None
):
    versions = ModelVersion.objects.visible_to(request.auth).by_digest(digest)
    keys = ("model__org__slug", "model__name", "-number")
    return versions_page(versions, request.auth, keys=keys, cursor=cursor, limit=limit)
