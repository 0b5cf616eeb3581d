"""MLflow's registered-models endpoints, each one registry service (or a read with the
permission helpers): a model the caller may not view is RESOURCE_DOES_NOT_EXIST."""

from typing import Any

from django.db import transaction

from mlflow_api import filters, sql
from mlflow_api.errors import already_exists
from mlflow_api.mapping import stage_from_mlflow
from mlflow_api.render import model_json, rendered_model, version_json
from mlflow_api.views import Call
from registry.errors import Conflict, NotFound
from registry.models import RegisteredModel
from registry.permissions import (
    get_model_for_user,
    get_version_for_user,
    org_and_role_for_user,
)
from registry.services.aliases import alias_remove, alias_set
from registry.services.registered_models import model_create, model_delete, model_update

# MLflow's own bounds (mlflow/store/model_registry/__init__.py).
DEFAULT_RESULTS = 100
MAX_RESULTS = 1000


def _answer(model: RegisteredModel) -> dict[str, Any]:
    return {"registered_model": model_json(rendered_model(model))}


def create(call: Call) -> dict[str, Any]:
    name = call.params.required("name")
    try:
        model = model_create(
            actor=call.user,
            org=call.org,
            name=name,
            description=call.params.text("description") or "",
            tags=call.params.tags(),
        )
    except Conflict as exc:  # the one conflict of a creation: the name is taken
        raise already_exists(exc.message) from None
    return _answer(model)


def get(call: Call) -> dict[str, Any]:
    return _answer(get_model_for_user(call.user, call.org, call.params.required("name")))


def _writable(call: Call) -> RegisteredModel:
    """The model named, for a change: 404 unless the caller may view it, 403 unless write."""
    return get_model_for_user(call.user, call.org, call.params.required("name"), "write")


def rename(call: Call) -> dict[str, Any]:
    model = _writable(call)
    new_name = call.params.required("new_name")
    try:
        model = model_update(actor=call.user, model=model, name=new_name)
    except Conflict as exc:  # the one conflict of a rename: the name is taken
        raise already_exists(exc.message) from None
    return _answer(model)


def update(call: Call) -> dict[str, Any]:
    model = _writable(call)
    description = call.params.text("description")
    if description is not None:
        model = model_update(actor=call.user, model=model, description=description)
    return _answer(model)


def delete(call: Call) -> dict[str, Any]:
    model = _writable(call)
    model_delete(actor=call.user, model=model)
    return {}


def search(call: Call) -> dict[str, Any]:
    size, offset = filters.page_request(call.params, DEFAULT_RESULTS, MAX_RESULTS)
    org, role = org_and_role_for_user(call.user, call.org)
    models = RegisteredModel.objects.visible_in(call.user, org, role=role)
    models = filters.filter_models(models, call.params.text("filter"))
    models = filters.order_models(models, call.params.texts("order_by"))
    # The ORM chooses the page; what it shows of each model is read in two statements.
    ids, token = filters.page(models.values_list("pk", flat=True), offset, size)
    answer: dict[str, Any] = {"registered_models": [model_json(m) for m in sql.models(ids)]}
    if token:
        answer["next_page_token"] = token
    return answer


def latest_versions(call: Call) -> dict[str, Any]:
    """The newest version in each stage asked (every stage when none is)."""
    model = get_model_for_user(call.user, call.org, call.params.required("name"))
    stages = {stage_from_mlflow(name) for name in call.params.texts("stages")}
    oldest_first = reversed(sql.latest_versions([model.pk]))
    versions = [v for v in oldest_first if not stages or v.stage in stages]
    return {"model_versions": [version_json(v) for v in versions]}


def _change_tags(call: Call, change) -> None:
    """Read the model's tags, change them and save them through model_update with the row
    locked from the read on, so that two concurrent tag changes both land."""
    model = _writable(call)
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update(no_key=True, of=("self",))
        fresh = locked.select_related("org").get(pk=model.pk)
        model_update(actor=call.user, model=fresh, tags=change(dict(fresh.tags)))


def set_tag(call: Call) -> dict[str, Any]:
    key, value = call.params.required("key"), call.params.text("value") or ""
    _change_tags(call, lambda tags: {**tags, key: value})
    return {}


def delete_tag(call: Call) -> dict[str, Any]:
    key = call.params.required("key")
    _change_tags(call, lambda tags: {k: v for k, v in tags.items() if k != key})
    return {}


def set_alias(call: Call) -> dict[str, Any]:
    """Point an alias at a version. A protected alias moves only by an org admin: others
    are refused (PERMISSION_DENIED) and request the move in Modelvault, for review."""
    name = call.params.required("name")
    version = get_version_for_user(call.user, call.org, name, call.params.version())
    alias_set(
        actor=call.user, model=version.model, name=call.params.required("alias"), version=version
    )
    return {}


def get_alias(call: Call) -> dict[str, Any]:
    """The version `name@alias`, read as the registry's get_version_by_ref reads it: the
    model as a fetch reads it (not viewable is not found), then the version its alias
    points at, here with what version_json shows of it in the same statement."""
    name, alias = call.params.required("name"), call.params.required("alias")
    model = get_model_for_user(call.user, call.org, name)
    version = sql.aliased_version(model.pk, alias)
    if version is None:
        raise NotFound(f"alias {alias} of model {name} not found")
    return {"model_version": version_json(version)}


def delete_alias(call: Call) -> dict[str, Any]:
    model = _writable(call)
    alias_remove(actor=call.user, model=model, name=call.params.required("alias"))
    return {}
