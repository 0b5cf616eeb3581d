"""Registered models, versions, locks, aliases, state and comments (SPEC 4.2). Each view
parses, fetches with authorisation (404 before 403), calls one service and renders."""

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Status

from api import schemas as s
from api import sql
from api.pagination import clean_limit, cursor_after, paginate
from api.render import (
    comment_json,
    comments_qs,
    json_response,
    model_json,
    model_versions_page,
    models_qs,
    version_json,
    version_read_json,
    versions_page,
)
from registry import query
from registry.errors import Invalid
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.permissions import (
    get_model_for_user,
    get_version_by_ref,
    get_version_for_user,
    org_and_role_for_user,
    read_with_model,
)
from registry.services.aliases import alias_remove, alias_set
from registry.services.comments import comment_add
from registry.services.registered_models import (
    model_create,
    model_delete,
    model_update,
    user_by_name,
)
from registry.services.versions import (
    version_delete,
    version_register,
    version_set_lock_level,
    version_update,
)
from registry.state import model_state_at

router = Router(tags=["models"])
E = s.ERRORS
MODEL = "/orgs/{org}/models/{model}"
VERSION = MODEL + "/versions/{number}"


# Registered models


@router.get("/orgs/{org}/models", response={200: s.ModelPage, **E})
def list_models(
    request: HttpRequest,
    org: str,
    stage: s.StageWord | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found, role = org_and_role_for_user(request.auth, org)
    models = RegisteredModel.objects.visible_in(request.auth, found, role=role).select_related(
        "org", "owner", "created_by"
    )
    if stage is not None:
        models = models.filter(versions__stage=stage).distinct()
    if q:
        matching = query.search_versions(ModelVersion.objects.filter(model__org=found), q)
        models = models.filter(pk__in=matching.values("model_id"))
    page = paginate(models, keys=["name"], cursor=cursor, limit=limit, render=model_json)
    return json_response(page)


@router.post("/orgs/{org}/models", response={201: s.ModelOut, **E})
def create_model(request: HttpRequest, org: str, payload: s.ModelCreateIn):
    model = model_create(actor=request.auth, org=org, **payload.model_dump())
    # Rendered as created (its org, owner and creator are the objects it was made with),
    # not read back: a test checks the answer equals a following GET.
    return json_response(model_json(model), status=201)


@router.get(MODEL, response={200: s.ModelOut, **E})
def get_model(request: HttpRequest, org: str, model: str):
    return model_json(get_model_for_user(request.auth, org, model))


@router.patch(MODEL, response={200: s.ModelOut, **E})
def update_model(request: HttpRequest, org: str, model: str, payload: s.ModelUpdateIn):
    found = get_model_for_user(request.auth, org, model, "write")
    changes = payload.model_dump(exclude_unset=True)
    if "owner" in changes:
        owner = user_by_name(changes["owner"]) if changes["owner"] is not None else None
        if changes["owner"] is not None and owner is None:
            raise Invalid(f"user {changes['owner']} not found")
        changes["owner"] = owner
    updated = model_update(actor=request.auth, model=found, **changes)
    return model_json(models_qs().get(pk=updated.pk))


@router.delete(MODEL, response={204: None, **E})
def delete_model(request: HttpRequest, org: str, model: str):
    found = get_model_for_user(request.auth, org, model, "write")
    model_delete(actor=request.auth, model=found)
    return Status(204, None)


# Versions


def _parents(
    request: HttpRequest, org: str, refs: list[dict | str] | None
) -> list[ModelVersion] | None:
    if refs is None:
        return None
    return [
        get_version_by_ref(request.auth, org, r)
        if isinstance(r, str)  # "fraud@champion"
        else get_version_for_user(request.auth, org, r["model"], r["number"])
        for r in refs
    ]


MODEL_VERSION_KEYS = ("-number",)


@router.get(MODEL + "/versions", response={200: s.VersionPage, **E})
def list_versions(
    request: HttpRequest,
    org: str,
    model: str,
    q: str | None = None,
    stage: s.StageWord | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    # No query, or plain equalities (`stage == production`): the model and its page in one
    # statement.
    equal = query.column_equalities(q)
    if equal is not None and stage is not None:
        if equal.get("stage", stage) != stage:
            equal = None  # two stages asked: the general way answers (nothing)
        else:
            equal["stage"] = stage
    if equal is not None:
        limit = clean_limit(limit)
        after = cursor_after(ModelVersion, MODEL_VERSION_KEYS, cursor)
        before = after[0] if after else None
        page = read_with_model(
            request.auth,
            org,
            model,
            lambda user_id, slug, name: sql.model_with_page(
                user_id, slug, name, before, limit + 1, equal
            ),
        )
        return model_versions_page(page, request.auth, keys=MODEL_VERSION_KEYS, limit=limit)
    found = get_model_for_user(request.auth, org, model)
    versions = ModelVersion.objects.filter(model=found)
    if stage is not None:
        versions = versions.filter(stage=stage)
    return versions_page(
        query.search_versions(versions, q),
        request.auth,
        keys=MODEL_VERSION_KEYS,
        cursor=cursor,
        limit=limit,
    )


@router.post(MODEL + "/versions", response={201: s.VersionOut, **E})
def create_version(request: HttpRequest, org: str, model: str, payload: s.VersionCreateIn):
    fields = payload.model_dump(exclude_unset=True)
    fields["parents"] = _parents(request, org, fields.get("parents"))
    version = version_register(actor=request.auth, org=org, model=model, **fields)
    # Rendered as created rather than read back: a new version has no artifacts and no
    # pending request yet, and its parents are those given (in versions_qs()'s order).
    version.artifact_list = []
    version.pending_requests = []
    version.parent_list = sorted(fields["parents"] or [], key=lambda p: (p.model_id, -p.number))
    return json_response(version_json(version, request.auth), status=201)


@router.get(VERSION, response={200: s.VersionOut, **E})
def get_version(request: HttpRequest, org: str, model: str, number: s.Number):
    return version_read_json(request.auth, org, model, number=number)


@router.patch(VERSION, response={200: s.VersionOut, **E})
def update_version(
    request: HttpRequest, org: str, model: str, number: s.Number, payload: s.VersionUpdateIn
):
    version = get_version_for_user(request.auth, org, model, number, "write")
    changes = payload.model_dump(exclude_unset=True)
    if "parents" in changes:
        changes["parents"] = _parents(request, org, changes["parents"])
    updated = version_update(actor=request.auth, version=version, **changes)
    return version_json(updated, request.auth)


@router.delete(VERSION, response={204: None, **E})
def delete_version(request: HttpRequest, org: str, model: str, number: s.Number):
    version = get_version_for_user(request.auth, org, model, number, "write")
    version_delete(actor=request.auth, version=version)
    return Status(204, None)


@router.put(VERSION + "/lock", response={200: s.VersionOut, **E})
def set_lock(request: HttpRequest, org: str, model: str, number: s.Number, payload: s.LockIn):
    version = get_version_for_user(request.auth, org, model, number, "write")
    updated = version_set_lock_level(actor=request.auth, version=version, level=payload.level)
    return version_json(updated, request.auth)


# Aliases and state


@router.get(MODEL + "/aliases/{alias}", response={200: s.VersionOut, **E})
def get_alias(request: HttpRequest, org: str, model: str, alias: str):
    return version_read_json(request.auth, org, model, alias=alias)


@router.put(MODEL + "/aliases/{alias}", response={200: s.AliasOut, **E})
def put_alias(request: HttpRequest, org: str, model: str, alias: str, payload: s.AliasIn):
    version = get_version_for_user(request.auth, org, model, payload.version, "write")
    found = alias_set(
        actor=request.auth,
        model=version.model,
        name=alias,
        version=version,
        comment=payload.comment,
    )
    return {"name": found.name, "version": version.number, "protected": found.protected}


@router.delete(MODEL + "/aliases/{alias}", response={204: None, **E})
def delete_alias(request: HttpRequest, org: str, model: str, alias: str):
    found = get_model_for_user(request.auth, org, model, "write")
    alias_remove(actor=request.auth, model=found, name=alias)
    return Status(204, None)


@router.get(MODEL + "/aliases", response={200: list[s.AliasOut], **E})
def list_aliases(request: HttpRequest, org: str, model: str):
    found = get_model_for_user(request.auth, org, model)
    aliases = Alias.objects.filter(model=found).select_related("version").order_by("name")
    return [
        {"name": a.name, "version": a.version.number, "protected": a.protected} for a in aliases
    ]


@router.get(MODEL + "/state", response={200: s.StateOut, **E})
def get_state(request: HttpRequest, org: str, model: str, at: datetime | None = None):
    found = get_model_for_user(request.auth, org, model)
    at = at or timezone.now()
    state = model_state_at(found, at)
    return {
        "at": at,
        "versions": {str(n): stage for n, stage in state["versions"].items()},
        "aliases": state["aliases"],
    }


# Comments


class _Page(s.Schema):
    cursor: str | None = None
    limit: s.Limit | None = None


@router.get(MODEL + "/comments", response={200: s.CommentPage, **E})
def list_model_comments(request: HttpRequest, org: str, model: str, page: Query[_Page]):
    found = get_model_for_user(request.auth, org, model)
    comments = comments_qs().filter(model=found, version__isnull=True)
    return paginate(
        comments, keys=["id"], cursor=page.cursor, limit=page.limit, render=comment_json
    )


@router.post(MODEL + "/comments", response={201: s.CommentOut, **E})
def add_model_comment(request: HttpRequest, org: str, model: str, payload: s.CommentIn):
    found = get_model_for_user(request.auth, org, model)
    comment = comment_add(actor=request.auth, model=found, body=payload.body)
    return Status(201, comment_json(comment))


@router.get(VERSION + "/comments", response={200: s.CommentPage, **E})
def list_version_comments(
    request: HttpRequest, org: str, model: str, number: s.Number, page: Query[_Page]
):
    version = get_version_for_user(request.auth, org, model, number)
    comments = comments_qs().filter(version=version)
    return paginate(
        comments, keys=["id"], cursor=page.cursor, limit=page.limit, render=comment_json
    )


@router.post(VERSION + "/comments", response={201: s.CommentOut, **E})
def add_version_comment(
    request: HttpRequest, org: str, model: str, number: s.Number, payload: s.CommentIn
):
    version = get_version_for_user(request.auth, org, model, number)
    comment = comment_add(
        actor=request.auth, model=version.model, version=version, body=payload.body
    )
    return Status(201, comment_json(comment))
