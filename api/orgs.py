"""An organization run by its admins over HTTP (SPEC 4.6): settings, members (invite, add,
role, remove, deactivate), teams.

Everything here but reading the settings is for org admins: a member who is not one gets
403, anybody else 404, as for a model they may not view. The rules (the last admin, users
of several orgs, service accounts) are the services'.
"""

from datetime import datetime
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.http import HttpRequest
from ninja import Router, Status
from pydantic.json_schema import SkipJsonSchema

from api import schemas as s
from api.pagination import paginate
from registry.errors import Invalid, NotFound
from registry.models import Membership, Organization, ServiceAccount, Team
from registry.permissions import get_org_for_user
from registry.services.members import (
    member_add,
    member_deactivate,
    member_invitation_renew,
    member_invite,
    member_reactivate,
)
from registry.services.orgs import (
    membership_remove,
    membership_set,
    org_members_named,
    org_update,
    team_create,
    team_delete,
    team_set_members,
)

User = get_user_model()
router = Router(tags=["organizations"])
E = s.ERRORS
ORG = "/orgs/{org}"
MEMBER = ORG + "/members/{username}"
TEAM = ORG + "/teams/{team_id}"
RoleWord = Literal["admin", "member"]


# Schemas


class OrgOut(s.Schema):
    slug: str
    name: str
    default_lock_level: s.LockWord
    required_approvals: int
    closed_is_final: bool
    default_reviewers: str | None  # the team granted approve on every new model
    created_at: datetime


class OrgSettingsIn(s.In):
    # Each may be left out (unchanged), never null.
    name: str | SkipJsonSchema[None] = None
    default_lock_level: s.LockWord | SkipJsonSchema[None] = None
    required_approvals: int | SkipJsonSchema[None] = None
    closed_is_final: bool | SkipJsonSchema[None] = None
    # A team's name; null for none (only org admins then review new models).
    default_reviewers: str | None = None


class MemberOut(s.Schema):
    username: str
    email: str
    first_name: str
    last_name: str
    role: RoleWord
    active: bool
    invited: bool  # has never set a password nor logged in
    service_account: bool
    teams: list[str]
    joined_at: datetime


class MemberPage(s.Schema):
    items: list[MemberOut]
    next: str | None


class MemberAddIn(s.In):
    username: str
    role: RoleWord = "member"


class MemberUpdateIn(s.In):
    role: RoleWord


class InvitationIn(s.In):
    username: str
    email: str
    role: RoleWord = "member"
    first_name: str = ""
    last_name: str = ""


class InvitationOut(s.Schema):
    member: MemberOut
    set_password_url: str  # shown this once; the invitee also receives it by e-mail


class TeamOut(s.Schema):
    id: int
    name: str
    members: list[str]
    created_at: datetime


class TeamPage(s.Schema):
    items: list[TeamOut]
    next: str | None


class TeamCreateIn(s.In):
    name: str


class TeamMembersIn(s.In):
    members: list[str]


# Rendering


def org_json(org: Organization) -> dict[str, Any]:
    found = {field: getattr(org, field) for field in OrgOut.model_fields}
    team = found["default_reviewers"]
    found["default_reviewers"] = team.name if team is not None else None
    return found


def _members_json(memberships: list[Membership]) -> list[dict[str, Any]]:
    """A page of members with their teams and service-account flag: two queries."""
    user_ids = [m.user_id for m in memberships]
    org_ids = {m.org_id for m in memberships}
    teams: dict[int, list[str]] = {}
    rows = (
        Team.objects.filter(org_id__in=org_ids, group__user__in=user_ids)
        .order_by("name")
        .values_list("group__user", "name")
    )
    for user_id, name in rows:
        teams.setdefault(user_id, []).append(name)
    accounts = set(
        ServiceAccount.objects.filter(user_id__in=user_ids).values_list("user_id", flat=True)
    )
    return [_member_json(m, teams.get(m.user_id, []), m.user_id in accounts) for m in memberships]


def _member_json(membership: Membership, teams: list[str], account: bool) -> dict[str, Any]:
    user = membership.user
    return {
        "username": user.get_username(),
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": membership.role,
        "active": user.is_active,
        "invited": not account and not user.has_usable_password() and user.last_login is None,
        "service_account": account,
        "teams": teams,
        "joined_at": membership.created_at,
    }


def member_json(membership: Membership) -> dict[str, Any]:
    return _members_json([membership])[0]


def _teams_qs():
    members = User.objects.order_by("username")
    return Team.objects.select_related("group").prefetch_related(
        Prefetch("group__user_set", queryset=members, to_attr="members")
    )


def team_json(team: Team) -> dict[str, Any]:
    return {
        "id": team.pk,
        "name": team.name,
        "members": [user.get_username() for user in team.group.members],
        "created_at": team.created_at,
    }


# Fetching with authorisation


def _membership(user, org: str, username: str) -> Membership:
    """The membership of `username` in `org`, for an admin of it."""
    found = get_org_for_user(user, org, "admin")
    membership = (
        Membership.objects.select_related("user", "org")
        .filter(org=found, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"member {username} of {found.slug} not found")
    return membership


def _team(user, org: str, team_id: int) -> Team:
    found = get_org_for_user(user, org, "admin")
    team = Team.objects.select_related("org", "group").filter(org=found, pk=team_id).first()
    if team is None:
        raise NotFound(f"team #{team_id} of {found.slug} not found")
    return team


# Endpoints: the organization


@router.get(ORG, response={200: OrgOut, **E})
def get_org(request: HttpRequest, org: str):
    return org_json(get_org_for_user(request.auth, org))


@router.patch(ORG, response={200: OrgOut, **E})
def update_org(request: HttpRequest, org: str, payload: OrgSettingsIn):
    found = get_org_for_user(request.auth, org, "admin")
    changes = payload.model_dump(exclude_unset=True)
    nulls = sorted(
        field for field, value in changes.items() if value is None and field != "default_reviewers"
    )
    if nulls:
        raise Invalid(f"{', '.join(nulls)} cannot be null: leave a field out to keep it")
    if changes.get("default_reviewers") is not None:
        team = Team.objects.filter(org=found, name=changes["default_reviewers"]).first()
        if team is None:
            raise Invalid(f"team {changes['default_reviewers']} not found in {found.slug}")
        changes["default_reviewers"] = team
    return org_json(org_update(actor=request.auth, org=found, **changes))


# Members


@router.get(ORG + "/members", response={200: MemberPage, **E})
def list_members(
    request: HttpRequest, org: str, cursor: str | None = None, limit: s.Limit | None = None
):
    found = get_org_for_user(request.auth, org, "admin")
    memberships = Membership.objects.filter(org=found).select_related("user")
    return paginate(
        memberships,
        keys=["user__username"],
        cursor=cursor,
        limit=limit,
        render_all=_members_json,
    )


@router.post(ORG + "/members", response={201: MemberOut, **E})
def add_member(request: HttpRequest, org: str, payload: MemberAddIn):
    """Add an existing, active user to the org (a new one: POST .../invitations)."""
    found = get_org_for_user(request.auth, org, "admin")
    membership = member_add(actor=request.auth, org=found, **payload.model_dump())
    return Status(201, member_json(membership))


@router.post(ORG + "/invitations", response={201: InvitationOut, **E})
def invite_member(request: HttpRequest, org: str, payload: InvitationIn):
    found = get_org_for_user(request.auth, org, "admin")
    membership, link = member_invite(actor=request.auth, org=found, **payload.model_dump())
    return Status(201, {"member": member_json(membership), "set_password_url": link})


@router.get(MEMBER, response={200: MemberOut, **E})
def get_member(request: HttpRequest, org: str, username: str):
    return member_json(_membership(request.auth, org, username))


@router.patch(MEMBER, response={200: MemberOut, **E})
def update_member(request: HttpRequest, org: str, username: str, payload: MemberUpdateIn):
    membership = _membership(request.auth, org, username)
    membership_set(actor=request.auth, org=membership.org, user=membership.user, role=payload.role)
    return member_json(_membership(request.auth, org, username))


@router.delete(MEMBER, response={204: None, **E})
def remove_member(request: HttpRequest, org: str, username: str):
    """Remove from the org: the user keeps their account and other memberships."""
    membership = _membership(request.auth, org, username)
    membership_remove(actor=request.auth, org=membership.org, user=membership.user)
    return Status(204, None)


@router.post(MEMBER + "/deactivate", response={200: MemberOut, **E})
def deactivate_member(request: HttpRequest, org: str, username: str):
    membership = _membership(request.auth, org, username)
    member_deactivate(actor=request.auth, org=membership.org, user=membership.user)
    return member_json(_membership(request.auth, org, username))


@router.post(MEMBER + "/reactivate", response={200: MemberOut, **E})
def reactivate_member(request: HttpRequest, org: str, username: str):
    membership = _membership(request.auth, org, username)
    member_reactivate(actor=request.auth, org=membership.org, user=membership.user)
    return member_json(_membership(request.auth, org, username))


@router.post(MEMBER + "/invitation", response={200: InvitationOut, **E})
def renew_invitation(request: HttpRequest, org: str, username: str):
    """A new set-password link for a member who has not used theirs."""
    membership = _membership(request.auth, org, username)
    link = member_invitation_renew(actor=request.auth, org=membership.org, user=membership.user)
    return {"member": member_json(membership), "set_password_url": link}


# Teams


@router.get(ORG + "/teams", response={200: TeamPage, **E})
def list_teams(
    request: HttpRequest, org: str, cursor: str | None = None, limit: s.Limit | None = None
):
    found = get_org_for_user(request.auth, org, "admin")
    teams = _teams_qs().filter(org=found)
    return paginate(teams, keys=["name"], cursor=cursor, limit=limit, render=team_json)


@router.post(ORG + "/teams", response={201: TeamOut, **E})
def create_team(request: HttpRequest, org: str, payload: TeamCreateIn):
    """A team without members: PUT .../teams/{team_id}/members names them."""
    found = get_org_for_user(request.auth, org, "admin")
    team = team_create(actor=request.auth, org=found, name=payload.name)
    return Status(201, team_json(_teams_qs().get(pk=team.pk)))


@router.get(TEAM, response={200: TeamOut, **E})
def get_team(request: HttpRequest, org: str, team_id: s.Number):
    team = _team(request.auth, org, team_id)
    return team_json(_teams_qs().get(pk=team.pk))


@router.put(TEAM + "/members", response={200: TeamOut, **E})
def set_team_members(request: HttpRequest, org: str, team_id: s.Number, payload: TeamMembersIn):
    team = _team(request.auth, org, team_id)
    users = org_members_named(team.org, payload.members)
    team_set_members(actor=request.auth, team=team, users=users)
    return team_json(_teams_qs().get(pk=team.pk))


@router.delete(TEAM, response={204: None, **E})
def delete_team(request: HttpRequest, org: str, team_id: s.Number):
    team_delete(actor=request.auth, team=_team(request.auth, org, team_id))
    return Status(204, None)
