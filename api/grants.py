"""Who may view, write and approve a model (SPEC 3.1) over HTTP: list, grant, revoke, so that
sharing can be kept in code. The UI's Settings tab does the same through the same services.

Listing needs write on the model; granting and revoking are the owner's or an org admin's,
which registry.services.registered_models decides (403 for others). A model the caller may
not view is 404, as everywhere.
"""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Query, Router, Status

from api import schemas as s
from registry.errors import Invalid, NotFound
from registry.models import (
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    RegisteredModel,
    Team,
)
from registry.permissions import get_model_for_user
from registry.services.registered_models import model_grant, model_revoke, user_by_name

router = Router(tags=["sharing"])
E = s.ERRORS
GRANTS = "/orgs/{org}/models/{model}/grants"
PermissionWord = Literal["view", "write", "approve"]
ORDER = {p.label: index for index, p in enumerate(ModelPermission)}


class GrantIn(s.In):
    permission: PermissionWord
    user: str | None = None  # a username; exactly one of user and team
    team: str | None = None  # a team of the model's org, by name


class GrantOut(s.Schema):
    permission: PermissionWord
    user: str | None
    team: str | None


class GrantList(s.Schema):
    items: list[GrantOut]


def _word(codename: str) -> str:
    return ModelPermission(codename).label


def grants_json(model: RegisteredModel) -> list[dict[str, Any]]:
    """Every grant on `model`, users first then teams, by name and permission: two queries
    whatever their number (a model holds at most three per member and team of its org)."""
    codenames = list(ModelPermission.values)
    users = ModelUserPermission.objects.filter(
        content_object=model, permission__codename__in=codenames
    ).values_list("user__username", "permission__codename")
    teams = ModelGroupPermission.objects.filter(
        content_object=model, permission__codename__in=codenames
    ).values_list("group__team__name", "group__name", "permission__codename")
    found = [{"permission": _word(c), "user": name, "team": None} for name, c in users]
    found += [
        {"permission": _word(c), "user": None, "team": team or group} for team, group, c in teams
    ]
    return sorted(
        found,
        key=lambda g: (g["user"] is None, g["user"] or g["team"], ORDER[g["permission"]]),
    )


def _team(model: RegisteredModel, name: str) -> Team | None:
    return Team.objects.select_related("org", "group").filter(org=model.org, name=name).first()


@router.get(GRANTS, response={200: GrantList, **E})
def list_grants(request: HttpRequest, org: str, model: str):
    found = get_model_for_user(request.auth, org, model, "write")
    return {"items": grants_json(found)}


@router.post(GRANTS, response={201: GrantOut, **E})
def add_grant(request: HttpRequest, org: str, model: str, payload: GrantIn):
    """Grant `permission` to a user or a team. Granting what is held already keeps it."""
    found = get_model_for_user(request.auth, org, model)
    user = team = None
    if payload.user is not None:
        try:
            user = user_by_name(payload.user)
        except NotFound as exc:  # a name in the body, not a missing resource
            raise Invalid(exc.message) from exc
    if payload.team is not None:
        team = _team(found, payload.team)
        if team is None:
            raise Invalid(f"team {payload.team} not found in {found.org.slug}")
    # The service refuses both or neither, a non-member, and a caller who may not share.
    model_grant(
        actor=request.auth, model=found, permission=payload.permission, user=user, team=team
    )
    return Status(
        201, {"permission": payload.permission, "user": payload.user, "team": payload.team}
    )


class RevokeQuery(s.Schema):
    permission: PermissionWord
    user: str | None = None
    team: str | None = None


def _grantee(model: RegisteredModel, query: RevokeQuery) -> tuple[Any, Team | None]:
    """The user or the team `query` names (404 when there is none of that name); whether it
    holds the grant is the service's to say."""
    if (query.user is None) == (query.team is None):
        raise Invalid("name exactly one of user and team")
    if query.user is not None:
        return user_by_name(query.user), None
    team = _team(model, query.team)
    if team is None:
        raise NotFound(f"team {query.team} not found in {model.org.slug}")
    return None, team


@router.delete(GRANTS, response={204: None, **E})
def revoke_grant(request: HttpRequest, org: str, model: str, query: Query[RevokeQuery]):
    """`?permission=approve&user=bob` (or `&team=ops`): take the grant back."""
    # Write first, as for the list: a viewer learns nothing of who holds what (403).
    found = get_model_for_user(request.auth, org, model, "write")
    user, team = _grantee(found, query)
    # The service refuses a caller who may not share (the owner or an org admin may).
    model_revoke(actor=request.auth, model=found, permission=query.permission, user=user, team=team)
    return Status(204, None)
