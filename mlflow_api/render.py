"""Modelvault rows as MLflow's RegisteredModel and ModelVersion JSON (model_registry.proto),
and what a rendering reads beside the rows, fetched in a fixed number of statements
(mlflow_api/sql.py), so that list endpoints never grow with rows."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from mlflow_api import sql
from mlflow_api.mapping import (
    LOCK_LEVEL_TAG,
    PENDING_REQUEST_TAG,
    PENDING_STAGE_TAG,
    RUN_TAGS,
    TO_MLFLOW_STAGE,
    artifact_uri,
)
from registry.models import ModelVersion, RegisteredModel


def ms(moment: datetime) -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def _username(user) -> str:
    return user.get_username() if user is not None else ""


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": tags[key]} for key in sorted(tags)]


def with_version_renderings(versions: QuerySet) -> QuerySet:
    """Versions with the rows version_json reads beside their own: model and creator (their
    aliases and pending request come with rendered_versions)."""
    return versions.select_related("model", "created_by")


def rendered_versions(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    """`versions` with their alias names and pending stage request: two statements
    (mlflow_api/sql.py) whatever their number."""
    versions = list(versions)
    ids = [version.pk for version in versions]
    aliases, pending = sql.version_aliases(ids), sql.pending_stage_requests(ids)
    for version in versions:
        version.alias_names = aliases.get(version.pk, [])
        version.pending_request = pending.get(version.pk)
    return versions


def rendered_version(version: ModelVersion) -> ModelVersion:
    """One version, as a fetch helper or a service gave it, with its renderings."""
    return rendered_versions([version])[0]


def version_json(version: ModelVersion) -> dict[str, Any]:
    stored = version.tags
    tags = {key: value for key, value in stored.items() if key not in RUN_TAGS.values()}
    tags[LOCK_LEVEL_TAG] = version.lock_level
    if version.pending_request is not None:
        request_id, to_stage = version.pending_request
        tags[PENDING_REQUEST_TAG] = str(request_id)
        tags[PENDING_STAGE_TAG] = TO_MLFLOW_STAGE[to_stage]
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
        "aliases": version.alias_names,
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


def with_model_renderings(models: QuerySet) -> QuerySet:
    """Models with their creator (their aliases and latest versions come with
    rendered_models)."""
    return models.select_related("created_by")


def rendered_models(models: Iterable[RegisteredModel]) -> list[RegisteredModel]:
    """`models` with their aliases and the newest version of each stage, rendered: five
    statements whatever their number."""
    models = list(models)
    ids = [model.pk for model in models]
    aliases = sql.model_aliases(ids)
    latest = ModelVersion.objects.filter(pk__in=sql.latest_version_ids(ids))
    by_model: dict[int, list[ModelVersion]] = defaultdict(list)
    for version in rendered_versions(with_version_renderings(latest).order_by("-number")):
        by_model[version.model_id].append(version)
    for model in models:
        model.alias_pairs = aliases.get(model.pk, [])
        model.latest_list = by_model.get(model.pk, [])
    return models


def rendered_model(model: RegisteredModel) -> RegisteredModel:
    """One model, as a fetch helper or a service gave it, with its renderings."""
    return rendered_models([model])[0]


def model_json(model: RegisteredModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": ms(model.created_at),
        "last_updated_timestamp": ms(model.updated_at),
        "user_id": _username(model.created_by),
        "latest_versions": [version_json(v) for v in model.latest_list],
        "tags": _tag_list(model.tags),
        "aliases": [{"alias": name, "version": str(number)} for name, number in model.alias_pairs],
    }
    if model.description:
        body["description"] = model.description
    return body
