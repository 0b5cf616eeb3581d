"""MLflow's model-versions endpoints, each one registry or approvals service (or a read
with the permission helpers). `transition-stage` never changes a stage: it opens a stage
request for review (SPEC 3.4), and the answer shows it among the version's tags."""

from typing import Any

from django.db import transaction

from approvals.services import request_create
from mlflow_api import filters, sql
from mlflow_api.mapping import RUN_TAGS, artifact_uri, refuse_reserved_tag, stage_from_mlflow
from mlflow_api.render import rendered_version, version_json
from mlflow_api.sql import ShownVersion
from mlflow_api.views import Call
from registry.errors import Invalid, NotFound
from registry.models import Artifact, ModelVersion, Organization, RegisteredModel, Stage
from registry.permissions import (
    Need,
    get_model_for_user,
    get_version_for_user,
    org_and_role_for_user,
)
from registry.services.versions import (
    locked_version,
    version_delete,
    version_register,
    version_update,
)

# MLflow's client asks for 10,000 versions by default and its server allows 200,000; a page
# here holds at most PAGE_SIZE, with a next_page_token when there are more.
MAX_RESULTS = 200_000
PAGE_SIZE = 1000
REQUEST_COMMENT = "Requested through the MLflow API (transition-stage)."


def _answer(version: ModelVersion) -> dict[str, Any]:
    return {"model_version": version_json(rendered_version(version))}


def _version(call: Call, need: Need = "view") -> ModelVersion:
    params = call.params
    return get_version_for_user(
        call.user, call.org, params.required("name"), params.version(), need
    )


def create(call: Call) -> dict[str, Any]:
    """Register a version on main at the org's default lock level. `source` is kept as its
    source_run and never fetched; run_id, run_link and model_id as tags."""
    params = call.params
    name = params.required("name")
    tags = params.tags()
    for key in tags:
        refuse_reserved_tag(key)
    for field, key in RUN_TAGS.items():
        value = params.text(field)
        if value:
            tags[key] = value
    version = version_register(
        actor=call.user,
        org=call.org,
        model=name,
        description=params.text("description") or "",
        tags=tags,
        source_run=params.text("source") or "",
    )
    return _answer(version)


def get(call: Call) -> dict[str, Any]:
    return _answer(_version(call))


def update(call: Call) -> dict[str, Any]:
    version = _version(call, "write")
    description = call.params.text("description")
    if description is not None:
        version = version_update(actor=call.user, version=version, description=description)
    return _answer(version)


def delete(call: Call) -> dict[str, Any]:
    version_delete(actor=call.user, version=_version(call, "write"))
    return {}


def search(call: Call) -> dict[str, Any]:
    """Versions matching MLflow's filter: of the models the caller may view in the org, or,
    when the filter names one model (`name = '...'`), of that model, read as every fetch
    reads a model (a model the caller may not view has none)."""
    requested, offset = filters.page_request(call.params, PAGE_SIZE, MAX_RESULTS)
    size = min(requested, PAGE_SIZE)
    text, order_by = call.params.text("filter"), call.params.texts("order_by")
    org, role = org_and_role_for_user(call.user, call.org)
    name = filters.named_model(text)
    model = None if name is None else _viewable_model(call, org, name)
    if model is not None and filters.names_only(text, name) and not order_by:
        # MLflow's client lists a model's versions so: read in one statement, newest first
        # (order_versions' order within a model), without building the ORM's.
        found = sql.model_versions(model.pk, offset, size + 1)
        return _answer_page(*filters.page_of(found, offset, size))
    if name is None:
        versions = ModelVersion.objects.visible_in(call.user, org, role=role)
    elif model is None:
        versions = ModelVersion.objects.none()
    else:
        versions = ModelVersion.objects.filter(model=model)
    versions = filters.filter_versions(versions, text)
    versions = filters.order_versions(versions, order_by)
    # The ORM chooses the page; what it shows of each version is read in one statement.
    ids, token = filters.page(versions.values_list("pk", flat=True), offset, size)
    return _answer_page(sql.versions(ids), token)


def _viewable_model(call: Call, org: Organization, name: str) -> RegisteredModel | None:
    try:
        return get_model_for_user(call.user, org, name)
    except NotFound:
        return None


def _answer_page(versions: list[ShownVersion], token: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"model_versions": [version_json(v) for v in versions]}
    if token:
        answer["next_page_token"] = token
    return answer


def download_uri(call: Call) -> dict[str, Any]:
    """Where MLflow's client downloads from: the artifact proxy for a version whose files
    Modelvault stores, else the external source it was registered with (never fetched)."""
    version = _version(call)
    stored = Artifact.objects.filter(version=version).exists()
    if stored or not version.source_run:
        return {"artifact_uri": artifact_uri(version.model.name, version.number)}
    return {"artifact_uri": version.source_run}


def _change_tags(call: Call, key: str, change) -> None:
    """Read the version's tags, change them and save them through version_update with the
    row locked from the read on, so that two concurrent tag changes both land."""
    refuse_reserved_tag(key)
    version = _version(call, "write")
    with transaction.atomic():
        fresh = locked_version(version)
        version_update(actor=call.user, version=fresh, tags=change(dict(fresh.tags)))


def set_tag(call: Call) -> dict[str, Any]:
    key, value = call.params.required("key"), call.params.text("value") or ""
    _change_tags(call, key, lambda tags: {**tags, key: value})
    return {}


def delete_tag(call: Call) -> dict[str, Any]:
    key = call.params.required("key")
    _change_tags(call, key, lambda tags: {k: v for k, v in tags.items() if k != key})
    return {}


def transition_stage(call: Call) -> dict[str, Any]:
    """Open a stage request (approvals.services.request_create) for reviewers to approve in
    Modelvault; the version keeps its stage until then. archive_existing_versions archives
    the versions in production when this one lands there, and applies to production only."""
    version = _version(call, "write")
    stage = stage_from_mlflow(call.params.required("stage"))
    archive = call.params.boolean("archive_existing_versions")
    if archive and stage != Stage.PRODUCTION:
        raise Invalid(
            "archive_existing_versions applies to a transition to Production only: Modelvault "
            "archives the versions in production when another one enters production"
        )
    request_create(
        actor=call.user,
        version=version,
        to_stage=stage,
        comment=REQUEST_COMMENT,
        archive_existing=archive,
    )
    return _answer(version)
