"""Rows to JSON, and the querysets that fetch everything a rendering needs in a fixed
number of queries (list endpoints never grow with rows)."""

from collections.abc import Sequence
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse

from api import sql
from api.pagination import page_of, paginate
from api.renderer import FastJSONRenderer, dumps
from approvals.models import Decision, RequestKind, Review, StageChangeRequest
from registry.models import (
    ActivityEvent,
    Artifact,
    Comment,
    ModelVersion,
    RegisteredModel,
)
from registry.permissions import read_with_version


def _name(user) -> str | None:
    return user.get_username() if user is not None else None


def models_qs() -> QuerySet:
    return RegisteredModel.objects.select_related("org", "owner", "created_by")


def model_json(model: RegisteredModel) -> dict[str, Any]:
    return {
        "id": model.pk,
        "org": model.org.slug,
        "name": model.name,
        "description": model.description,
        "readme": model.readme,
        "owner": _name(model.owner),
        "visibility": model.visibility,
        "required_approvals": model.required_approvals,
        "tags": model.tags,
        "created_by": _name(model.created_by),
        "created_at": model.created_at,
        "updated_at": model.updated_at,
    }


def version_prefetches() -> list[Prefetch]:
    """What version_json reads beyond the version's own row and its model, org, branch and
    creator (select_related): each as a plain list per row (to_attr), where a prefetched
    manager would clone a queryset for each of the page's rows."""
    pending = (
        StageChangeRequest.objects.pending()
        .filter(kind=RequestKind.STAGE)
        .select_related("requester")
        .with_approvals()
    )
    return [
        Prefetch(
            "artifacts",
            queryset=Artifact.objects.select_related("blob").order_by("path"),
            to_attr="artifact_list",
        ),
        Prefetch(
            "parents",
            queryset=ModelVersion.objects.select_related("model"),
            to_attr="parent_list",
        ),
        Prefetch("stage_requests", queryset=pending, to_attr="pending_requests"),
    ]


def versions_qs() -> QuerySet:
    return ModelVersion.objects.select_related(
        "model__org", "branch", "created_by"
    ).prefetch_related(*version_prefetches())


def version_read_json(
    viewer, org: str, model: str, *, number: int | None = None, alias: str | None = None
) -> HttpResponse:
    """version_json's answer to `viewer` for version `number` of the model `model` of `org`,
    or for the version its alias `alias` points at, read as it is stored now with the
    viewer's access (api.sql.version_with_page: one statement, where prefetching what
    version_json reads takes four beside the fetch): 404 unless they may view it."""
    found = read_with_version(viewer, org, model, sql.version_with_page, number=number, alias=alias)
    return json_response(_versions_json([found], viewer)[0])


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {"path": artifact.path, "size": artifact.blob.size, "sha256": artifact.blob_id}


def _version_dict(
    pk: Any,
    model: str,
    branch: str,
    columns: dict[str, Any],
    parents: list[dict[str, Any]],
    artifacts: list[dict[str, Any]],
    created_by: str | None,
    created_at: Any,
    pending: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": str(pk),
        "model": model,
        "number": columns["number"],
        "label": columns["label"],
        "branch": branch,
        **{name: columns[name] for name in sql.VERSION_COLUMNS[2:]},
        "parents": parents,
        "artifacts": artifacts,
        "created_by": created_by,
        "created_at": created_at,
        "pending_request": pending,
    }


def viewable_model_ids(viewer, versions_models: dict[Any, set[Any]]) -> set[Any]:
    """Of the models of parents listed beside each version (its model id -> its parents'
    model ids), those `viewer` may view: a parent in a model hidden from the viewer does not
    exist for them (SPEC 3.1), and is neither listed nor counted. A version's own model is
    viewable (the viewer found the version); other models cost one query for all."""
    others = {m for model, parents in versions_models.items() for m in parents if m != model}
    if not others:
        return set(versions_models)
    visible = RegisteredModel.objects.visible_to(viewer).filter(id__in=others)
    return set(versions_models) | set(visible.values_list("id", flat=True))


def version_json(version: ModelVersion, viewer) -> dict[str, Any]:
    """What the API shows of `version` to `viewer`, who may view it."""
    pending = getattr(version, "pending_requests", None)
    if pending is None:  # a version not fetched through versions_qs(): fetch it now
        version = versions_qs().get(pk=version.pk)
        pending = version.pending_requests
    request = pending[0] if pending else None
    parents = version.parent_list
    if parents:
        visible = viewable_model_ids(viewer, {version.model_id: {p.model_id for p in parents}})
        parents = [p for p in parents if p.model_id in visible]
    return _version_dict(
        version.pk,
        version.model.name,
        version.branch.name,
        {name: getattr(version, name) for name in sql.VERSION_COLUMNS},
        [
            {"id": str(p.pk), "model": p.model.name, "number": p.number, "digest": p.digest}
            for p in parents
        ],
        [artifact_json(a) for a in version.artifact_list],
        _name(version.created_by),
        version.created_at,
        None
        if request is None
        else {
            "id": request.pk,
            "to_stage": request.to_stage,
            "requester": _name(request.requester),
            "approvals": request.approvals,
            "required_approvals": request.required_approvals,
            "created_at": request.created_at,
        },
    )


def versions_page(
    versions: QuerySet,
    viewer,
    *,
    keys: Sequence[str],
    cursor: str | None,
    limit: int | None,
) -> HttpResponse:
    """The page of `versions` (narrowed to what the caller may view) in the order `keys`,
    after `cursor`, as `viewer` sees them: the ORM picks the page's ids and sort keys;
    api.sql reads what each version shows, as version_json has it, in one statement."""
    rows = versions.values("id", *(key.lstrip("-") for key in keys))

    def render_all(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return versions_page_json(rows, viewer)

    page = paginate(rows, keys=keys, cursor=cursor, limit=limit, render_all=render_all)
    return json_response(page)


def model_versions_page(
    found: list[dict[str, Any]], viewer, *, keys: Sequence[str], limit: int
) -> HttpResponse:
    """The page of a model's versions as versions_page answers it, from what
    api.sql.model_with_page read: at most `limit` + 1 versions in the order `keys` (by
    number, newest first) after the cursor, where another query chooses the page's ids
    first."""
    found, next_cursor = page_of(found, keys, limit)
    return json_response({"items": _versions_json(found, viewer), "next": next_cursor})


def versions_page_json(rows: list[dict[str, Any]], viewer) -> list[dict[str, Any]]:
    """version_json's answer to `viewer` for the versions of these rows (with an "id" each),
    in their order; a version deleted since its row was read is left out."""
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    versions = sql.page_versions(ids)
    return _versions_json([versions[pk] for pk in ids if pk in versions], viewer)


def _versions_json(versions: list[dict[str, Any]], viewer) -> list[dict[str, Any]]:
    """version_json's answer to `viewer` for versions as api.sql reads them: a parent of a
    model they may not view is left out."""
    models: dict[Any, set[Any]] = {}
    for found in versions:
        models.setdefault(found["model_id"], set()).update(p[4] for p in found["parents"])
    visible = viewable_model_ids(viewer, models)
    return [_page_version_json(found, visible) for found in versions]


def _page_version_json(found: dict[str, Any], visible: set[Any]) -> dict[str, Any]:
    pending = found["pending"]
    if pending is not None:
        pk, to_stage, requester, approvals, required, created_at = pending
        pending = {
            "id": pk,
            "to_stage": to_stage,
            "requester": requester,
            "approvals": approvals,
            "required_approvals": required,
            "created_at": created_at,
        }
    return _version_dict(
        found["id"],
        found["model__name"],
        found["branch__name"],
        found,
        [
            {"id": str(pk), "model": model, "number": number, "digest": digest}
            for pk, model, number, digest, model_id in found["parents"]
            if model_id in visible
        ],
        [{"path": path, "size": size, "sha256": sha} for path, size, sha in found["artifacts"]],
        found["created_by__username"],
        found["created_at"],
        pending,
    )


def json_response(data: Any, status: int = 200) -> HttpResponse:
    """`data` as the API's JSON renderer writes it, for what the view has built to its
    response schema already (pages, a registration): django-ninja's validation of a page of
    200 versions costs more than building it. Tests check these answers against the schema,
    or against a GET of the same thing, which is validated."""
    return HttpResponse(
        dumps(data),
        status=status,
        content_type=f"{FastJSONRenderer.media_type}; charset={FastJSONRenderer.charset}",
    )


def requests_qs() -> QuerySet:
    # The reviews with their reviewers in one query.
    reviews = Review.objects.select_related("reviewer")
    return StageChangeRequest.objects.for_listing().prefetch_related(
        Prefetch("reviews", queryset=reviews)
    )


def request_json(request: StageChangeRequest, *, new: bool = False) -> dict[str, Any]:
    """A request of requests_qs(); or one a service has just made (`new`: it has no reviews)
    or decided, as the service left it (with its model and org, version, requester), its
    reviews read now."""
    if hasattr(request, "approvals"):
        reviews, approvals = list(request.reviews.all()), request.approvals
    elif new:
        reviews, approvals = [], 0
    else:
        reviews = list(Review.objects.select_related("reviewer").filter(request=request))
        approvals = sum(review.decision == Decision.APPROVE for review in reviews)
    return {
        "id": request.pk,
        "kind": request.kind,
        "org": request.model.org.slug,
        "model": request.model.name,
        "version": request.version.number,
        "from_stage": request.from_stage,
        "to_stage": request.to_stage,
        "archive_existing": request.archive_existing,
        "skips": request.skips,
        "moves_back": request.moves_back,
        "alias": request.alias_name,
        "comment": request.comment,
        "requester": _name(request.requester),
        "status": request.status,
        "approvals": approvals,
        "required_approvals": request.required_approvals,
        "reviews": [
            {
                "reviewer": _name(r.reviewer),
                "decision": r.decision,
                "comment": r.comment,
                "created_at": r.created_at,
            }
            for r in reviews
        ],
        "created_at": request.created_at,
        "decided_at": request.decided_at,
    }


def comments_qs() -> QuerySet:
    return Comment.objects.select_related("model", "version", "author")


def comment_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "model": comment.model.name,
        "version": comment.version.number if comment.version is not None else None,
        "author": _name(comment.author),
        "body": comment.body,
        "created_at": comment.created_at,
    }


def event_json(event: ActivityEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "created_at": event.created_at,
        "actor": event.actor_name,
        "verb": event.verb,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target": event.target_repr,
        "model_id": event.model_id,
        "version_id": str(event.version_id) if event.version_id else None,
        "changes": event.changes,
        "data": event.data,
        "hash": event.hash,
    }
