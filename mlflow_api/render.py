"""Modelvault models and versions as MLflow's RegisteredModel and ModelVersion JSON
(model_registry.proto), from what mlflow_api/sql.py reads of them: a fixed number of
statements whatever the number of rows, so that list endpoints never grow with rows."""

from datetime import datetime
from typing import Any

from mlflow_api import sql
from mlflow_api.mapping import (
    LOCK_LEVEL_TAG,
    PENDING_REQUEST_TAG,
    PENDING_STAGE_TAG,
    RUN_TAGS,
    TO_MLFLOW_STAGE,
    artifact_uri,
)
from mlflow_api.sql import ShownModel, ShownVersion
from registry.errors import NotFound
from registry.models import ModelVersion, RegisteredModel


def ms(moment: datetime) -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": tags[key]} for key in sorted(tags)]


def rendered_version(version: ModelVersion) -> ShownVersion:
    """A version that a fetch helper or a service gave, read as version_json shows it."""
    found = sql.versions([version.pk])
    if not found:  # deleted by another request meanwhile
        raise NotFound(f"version {version.number} of model {version.model.name} not found")
    return found[0]


def version_json(version: ShownVersion) -> dict[str, Any]:
    stored = version.tags
    tags = {key: value for key, value in stored.items() if key not in RUN_TAGS.values()}
    tags[LOCK_LEVEL_TAG] = version.lock_level
    if version.pending_request is not None:
        request_id, to_stage = version.pending_request
        tags[PENDING_REQUEST_TAG] = str(request_id)
        tags[PENDING_STAGE_TAG] = TO_MLFLOW_STAGE[to_stage]
    body: dict[str, Any] = {
        "name": version.model_name,
        "version": str(version.number),
        "creation_timestamp": ms(version.created_at),
        "last_updated_timestamp": ms(version.updated_at),
        "user_id": version.creator,
        "current_stage": TO_MLFLOW_STAGE[version.stage],
        "source": version.source_run or artifact_uri(version.model_name, version.number),
        "status": "READY",
        "tags": _tag_list(tags),
        "aliases": version.aliases,
    }
    if version.description:
        body["description"] = version.description
    for field, key in RUN_TAGS.items():
        if stored.get(key):
            body[field] = stored[key]
    return body


def rendered_model(model: RegisteredModel) -> ShownModel:
    """A model that a fetch helper or a service gave, read as model_json shows it."""
    found = sql.models([model.pk])
    if not found:  # deleted by another request meanwhile
        raise NotFound(f"model {model.name} not found")
    return found[0]


def model_json(model: ShownModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": ms(model.created_at),
        "last_updated_timestamp": ms(model.updated_at),
        "user_id": model.creator,
        "latest_versions": [version_json(v) for v in model.latest_versions],
        "tags": _tag_list(model.tags),
        "aliases": [{"alias": name, "version": str(number)} for name, number in model.aliases],
    }
    if model.description:
        body["description"] = model.description
    return body
