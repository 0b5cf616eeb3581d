"""Single sign-on's state changes: the group mappings that org admins edit, and what a
login does with them (SPEC 4.6; docs/operations.md, "Single sign-on").

At each login, for every org whose mappings name a group of the user's groups claim, the
login makes or updates the user's membership (role: admin if any matching mapping says so,
else member) and sets their membership of the teams that the org's mappings name (those of
the matching mappings, none of the others; teams no mapping names are left alone). A
membership that a login made (ManagedMembership) is removed at the first login whose groups
no longer match any of the org's mappings. A membership an admin made by hand is never
changed or removed by a login: it stays the admins' own.

Every change goes through registry.services.orgs, so a login writes the same activity events
as an admin's change would, in the login's transaction. The system acts (actor=None, as
for a management command): the mapping the org's admins set, recorded as nobody ("system"
on the activity pages).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from registry import validation
from registry.errors import Conflict, Invalid
from registry.models import Membership, Organization, Role, Team
from registry.permissions import require_org
from registry.services.activity import event_record
from registry.services.orgs import (
    locked_user,
    membership_remove,
    membership_set,
    team_set_members,
)
from sso.models import GroupMapping, ManagedMembership

User = get_user_model()
log = logging.getLogger("modelvault.sso")


# The mappings, edited by org admins


def _clean_mapping(org: Organization, group, role, teams) -> tuple[str, str, list[Team]]:
    if not isinstance(group, str) or not group.strip():
        raise Invalid("a mapping needs the name of a group (a value of the groups claim)")
    group = validation.short_text(group.strip(), "group", 200)
    if role not in Role.values:
        raise Invalid(f"role must be one of {Role.values}")
    teams = list(teams)
    strangers = [team for team in teams if not isinstance(team, Team) or team.org_id != org.pk]
    if strangers:
        raise Invalid(f"the teams of a mapping must be teams of {org.slug}")
    return group, role, sorted(set(teams), key=lambda team: team.name)


def _team_names(teams: Iterable[Team]) -> list[str]:
    return sorted(team.name for team in teams)


@transaction.atomic
def mapping_create(
    *, actor, org: Organization, group: str, role: str = Role.MEMBER, teams: Iterable[Team] = ()
) -> GroupMapping:
    """Map the provider's group `group` to membership of `org` with `role` and `teams`.
    One mapping per group and org: another for the same group is a Conflict."""
    require_org(actor, org, "admin")
    group, role, teams = _clean_mapping(org, group, role, teams)
    if GroupMapping.objects.filter(org=org, group=group).exists():
        raise Conflict(f"group {group} is mapped already in {org.slug}: change that mapping")
    mapping = GroupMapping.objects.create(org=org, group=group, role=role)
    mapping.teams.set(teams)
    event_record(
        actor=actor,
        org=org,
        verb="sso_mapping.created",
        target=mapping,
        target_type="sso_mapping",
        changes={
            "group": [None, group],
            "role": [None, role],
            "teams": [None, _team_names(teams)],
        },
    )
    return mapping


@transaction.atomic
def mapping_update(
    *, actor, mapping: GroupMapping, group: str, role: str, teams: Iterable[Team]
) -> GroupMapping:
    """Change a mapping. Memberships follow at each user's next login."""
    require_org(actor, mapping.org, "admin")
    group, role, teams = _clean_mapping(mapping.org, group, role, teams)
    mapping = GroupMapping.objects.select_for_update().select_related("org").get(pk=mapping.pk)
    taken = GroupMapping.objects.filter(org=mapping.org, group=group).exclude(pk=mapping.pk)
    if taken.exists():
        raise Conflict(f"group {group} is mapped already in {mapping.org.slug}")
    before = {
        "group": mapping.group,
        "role": mapping.role,
        "teams": _team_names(mapping.teams.all()),
    }
    after = {"group": group, "role": role, "teams": _team_names(teams)}
    diff = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    if not diff:
        return mapping
    mapping.group, mapping.role = group, role
    mapping.save(update_fields=["group", "role"])
    mapping.teams.set(teams)
    event_record(
        actor=actor,
        org=mapping.org,
        verb="sso_mapping.updated",
        target=mapping,
        target_type="sso_mapping",
        changes=diff,
    )
    return mapping


@transaction.atomic
def mapping_delete(*, actor, mapping: GroupMapping) -> None:
    """Remove a mapping. The memberships it granted go at each user's next login (unless
    another mapping of the org still matches them)."""
    require_org(actor, mapping.org, "admin")
    event_record(
        actor=actor,
        org=mapping.org,
        verb="sso_mapping.deleted",
        target=mapping,
        target_type="sso_mapping",
        changes={
            "group": [mapping.group, None],
            "role": [mapping.role, None],
            "teams": [_team_names(mapping.teams.all()), None],
        },
    )
    mapping.delete()


# A login


@dataclass
class Granted:
    """What the mappings of one org grant a user: a role and teams."""

    org: Organization
    role: str = Role.MEMBER
    team_ids: set[int] = field(default_factory=set)


def granted_by(groups: Iterable[str]) -> dict[int, Granted]:
    """What the mappings grant a user in `groups`, by org id (admin wins over member; the
    teams add up)."""
    granted: dict[int, Granted] = {}
    mappings = (
        GroupMapping.objects.filter(group__in=set(groups))
        .select_related("org")
        .prefetch_related("teams")
        .order_by("org_id", "group")
    )
    for mapping in mappings:
        grant = granted.setdefault(mapping.org_id, Granted(org=mapping.org))
        if mapping.role == Role.ADMIN:
            grant.role = Role.ADMIN
        grant.team_ids.update(team.pk for team in mapping.teams.all())
    return granted


def _set_teams(org: Organization, user, wanted: set[int]) -> None:
    """Put `user` in the teams of `org` that its mappings name and `wanted` holds, and out
    of the others that its mappings name. Each team row is locked before its members are
    read, so that two logins at once never drop each other's change."""
    teams = (
        Team.objects.select_for_update()
        .filter(org=org, pk__in=GroupMapping.objects.filter(org=org).values("teams"))
        .select_related("org", "group")
        .order_by("pk")
    )
    for team in teams:
        members = list(team.group.user_set.order_by("pk"))
        inside = any(member.pk == user.pk for member in members)
        if inside == (team.pk in wanted):
            continue
        if inside:
            members = [member for member in members if member.pk != user.pk]
        else:
            members.append(user)
        team_set_members(actor=None, team=team, users=members)


@transaction.atomic
def memberships_sync(*, user, groups: Iterable[str]) -> None:
    """Make the memberships that the mappings manage follow `groups`, the user's groups
    claim at this login (module docstring). The user's row is locked first, so that two
    logins of one user take turns. A change the org's rules refuse (taking the last admin
    away) is logged and skipped: the login goes on."""
    user = locked_user(user)
    granted = granted_by(groups)
    memberships = Membership.objects.filter(user=user).select_related("org", "sso_managed")
    current = {membership.org_id: membership for membership in memberships}
    for org_id, grant in granted.items():
        membership = current.get(org_id)
        if membership is not None and not hasattr(membership, "sso_managed"):
            continue  # made by hand: the admins' own
        if membership is None:
            membership = membership_set(actor=None, org=grant.org, user=user, role=grant.role)
            ManagedMembership.objects.create(membership=membership)
        elif membership.role != grant.role:
            _refusable(membership_set, org=grant.org, user=user, role=grant.role)
        _set_teams(grant.org, user, grant.team_ids)
    for org_id, membership in current.items():
        if org_id not in granted and hasattr(membership, "sso_managed"):
            _refusable(membership_remove, org=membership.org, user=user)


def _refusable(service, **kwargs) -> None:
    try:
        service(actor=None, **kwargs)
    except Conflict as exc:
        log.warning("single sign-on left a membership as it was: %s", exc.message)
