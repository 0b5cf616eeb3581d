"""Modelvault rows as MLflow's RegisteredModel and ModelVersion JSON (model_registry.proto),
and the querysets that fetch what a rendering reads in a fixed number of queries, so that
list endpoints never grow with rows."""

from datetime import datetime
from typing import Any

from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery, prefetch_related_objects

from approvals.models import RequestKind, StageChangeRequest
from mlflow_api.mapping import (
    LOCK_LEVEL_TAG,
    PENDING_REQUEST_TAG,
    PENDING_STAGE_TAG,
    RUN_TAGS,
    TO_MLFLOW_STAGE,
    artifact_uri,
)
from registry.models import Alias, ModelVersion, RegisteredModel


def ms(moment: datetime) -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def _username(user) -> str:
    return user.get_username() if user is not None else ""


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": tags[key]} for key in sorted(tags)]


def _version_prefetches() -> list[Prefetch]:
    pending = StageChangeRequest.objects.pending().filter(kind=RequestKind.STAGE).order_by("pk")
    return [
        Prefetch("aliases", queryset=Alias.objects.order_by("name"), to_attr="alias_list"),
        Prefetch("stage_requests", queryset=pending, to_attr="pending_requests"),
    ]


def with_version_renderings(versions: QuerySet) -> QuerySet:
    """Versions with what version_json reads: model, creator, alias names, pending request."""
    return versions.select_related("model", "created_by").prefetch_related(*_version_prefetches())


def rendered_version(version: ModelVersion) -> ModelVersion:
    """One version, as a fetch helper or a service gave it, with its renderings."""
    prefetch_related_objects([version], *_version_prefetches())
    return version


def version_json(version: ModelVersion) -> dict[str, Any]:
    stored = version.tags
    tags = {key: value for key, value in stored.items() if key not in RUN_TAGS.values()}
    tags[LOCK_LEVEL_TAG] = version.lock_level
    if version.pending_requests:
        request = version.pending_requests[0]
        tags[PENDING_REQUEST_TAG] = str(request.pk)
        tags[PENDING_STAGE_TAG] = TO_MLFLOW_STAGE[request.to_stage]
    body: dict[str, Any] = {
        "name": version.model.name,
        "version": str(version.number),
        "creation_timestamp": ms(version.created_at),
        "last_updated_timestamp": ms(version.updated_at),
        "user_id": _username(version.created_by),
        "current_stage": TO_MLFLOW_STAGE[version.stage],
        "source": version.source_run or artifact_uri(version),
        "status": "READY",
        "tags": _tag_list(tags),
        "aliases": [alias.name for alias in version.alias_list],
    }
    if version.description:
        body["description"] = version.description
    for field, key in RUN_TAGS.items():
        if stored.get(key):
            body[field] = stored[key]
    return body


def latest_per_stage(versions: QuerySet) -> QuerySet:
    """Of `versions`, the newest of each model in each stage (MLflow's latest_versions)."""
    newest = (
        ModelVersion.objects.filter(model=OuterRef("model"), stage=OuterRef("stage"))
        .order_by("-number")
        .values("number")[:1]
    )
    return versions.filter(number=Subquery(newest))


def _model_prefetches() -> list[Prefetch]:
    latest = with_version_renderings(latest_per_stage(ModelVersion.objects.all()))
    aliases = Alias.objects.annotate(number=F("version__number")).order_by("name")
    return [
        Prefetch("aliases", queryset=aliases, to_attr="alias_list"),
        Prefetch("versions", queryset=latest.order_by("-number"), to_attr="latest_list"),
    ]


def with_model_renderings(models: QuerySet) -> QuerySet:
    """Models with what model_json reads: creator, aliases, latest version of each stage."""
    return models.select_related("created_by").prefetch_related(*_model_prefetches())


def rendered_model(model: RegisteredModel) -> RegisteredModel:
    """One model, as a fetch helper or a service gave it, with its renderings."""
    prefetch_related_objects([model], *_model_prefetches())
    return model


def model_json(model: RegisteredModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": ms(model.created_at),
        "last_updated_timestamp": ms(model.updated_at),
        "user_id": _username(model.created_by),
        "latest_versions": [version_json(v) for v in model.latest_list],
        "tags": _tag_list(model.tags),
        "aliases": [{"alias": a.name, "version": str(a.number)} for a in model.alias_list],
    }
    if model.description:
        body["description"] = model.description
    return body
