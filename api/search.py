"""Finding versions: by query (SPEC 3.9) across the models of an org, and by digest."""

from collections.abc import Sequence

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router

from api import schemas as s
from api.pagination import after_condition, paginate
from api.render import json_response, version_rows, versions_page_json
from registry import query
from registry.models import ModelVersion
from registry.permissions import get_org_for_user

router = Router(tags=["search"])
E = s.ERRORS


def filter_versions(versions: QuerySet, q: str) -> QuerySet:
    """`versions` narrowed by a query of the shared language (registry.query). The caller
    has already restricted them to what the user may view."""
    return query.search_versions(versions, q)


def page_query(
    versions: QuerySet, text: str | None, keys: Sequence[str], limit: int, after: list | None
) -> QuerySet:
    """The query of a prepared page of versions: `versions` narrowed by the query text (if
    any), as page rows ordered by `keys`, after the cursor's values (if given), cut at
    limit + 1."""
    if text is not None:
        versions = filter_versions(versions, text)
    rows = version_rows(versions).order_by(*keys)
    if after is not None:
        rows = rows.filter(after_condition(keys, after))
    return rows[: limit + 1]


SEARCH_KEYS = ("model__name", "-number")


@router.get("/orgs/{org}/versions", response={200: s.VersionPage, **E})
def search_versions(
    request: HttpRequest,
    org: str,
    q: str | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found = get_org_for_user(request.auth, org)
    versions = ModelVersion.objects.visible_in(request.auth, found)
    if q and q.strip():
        versions = filter_versions(versions, q)
    page = paginate(
        version_rows(versions),
        keys=SEARCH_KEYS,
        kinds=(str, int),
        cursor=cursor,
        limit=limit,
        render_all=versions_page_json,
    )
    return json_response(page)


@router.get("/versions/by-digest/{digest}", response={200: s.VersionPage, **E})
def versions_by_digest(
    request: HttpRequest, digest: str, cursor: str | None = None, limit: s.Limit | None = None
):
    versions = ModelVersion.objects.visible_to(request.auth).by_digest(digest)
    page = paginate(
        version_rows(versions, "model__org__slug"),
        keys=["model__org__slug", "model__name", "-number"],
        cursor=cursor,
        limit=limit,
        render_all=versions_page_json,
    )
    return json_response(page)
