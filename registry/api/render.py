"""Rows to JSON, and the querysets that fetch everything a rendering needs in a fixed
number of queries (list endpoints never grow with rows)."""

from typing import Any

from django.db.models import Prefetch, QuerySet, prefetch_related_objects

from approvals.models import RequestKind, StageChangeRequest
from registry.models import ActivityEvent, Artifact, Comment, ModelVersion, RegisteredModel


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


def with_renderings(version: ModelVersion) -> ModelVersion:
    """A version fetched with its model, org, branch and creator (get_version_for_user),
    given what else version_json reads."""
    prefetch_related_objects([version], *version_prefetches())
    return version


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {"path": artifact.path, "size": artifact.blob.size, "sha256": artifact.blob_id}


def version_json(version: ModelVersion) -> dict[str, Any]:
    pending = getattr(version, "pending_requests", None)
    if pending is None:  # a version not fetched through versions_qs(): fetch it now
        version = versions_qs().get(pk=version.pk)
        pending = version.pending_requests
    request = pending[0] if pending else None
    return {
        "id": str(version.pk),
        "model": version.model.name,
        "number": version.number,
        "label": version.label,
        "branch": version.branch.name,
        "stage": version.stage,
        "lock_level": version.lock_level,
        "digest": version.digest,
        "description": version.description,
        "readme": version.readme,
        "tags": version.tags,
        "framework": version.framework,
        "flavor": version.flavor,
        "params": version.params,
        "metrics": version.metrics,
        "environment": version.environment,
        "datasets": version.datasets,
        "code_version": version.code_version,
        "input_schema": version.input_schema,
        "output_schema": version.output_schema,
        "experiment_id": version.experiment_id,
        "source_run": version.source_run,
        "parents": [
            {"id": str(p.pk), "model": p.model.name, "number": p.number, "digest": p.digest}
            for p in version.parent_list
        ],
        "artifacts": [artifact_json(a) for a in version.artifact_list],
        "created_by": _name(version.created_by),
        "created_at": version.created_at,
        "pending_request": None
        if request is None
        else {
            "id": request.pk,
            "to_stage": request.to_stage,
            "requester": _name(request.requester),
            "approvals": request.approvals,
            "required_approvals": request.required_approvals,
            "created_at": request.created_at,
        },
    }


def requests_qs() -> QuerySet:
    return StageChangeRequest.objects.for_listing().prefetch_related("reviews__reviewer")


def request_json(request: StageChangeRequest) -> dict[str, Any]:
    if not hasattr(request, "approvals"):
        request = requests_qs().get(pk=request.pk)
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
        "approvals": request.approvals,
        "required_approvals": request.required_approvals,
        "reviews": [
            {
                "reviewer": _name(r.reviewer),
                "decision": r.decision,
                "comment": r.comment,
                "created_at": r.created_at,
            }
            for r in request.reviews.all()
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
