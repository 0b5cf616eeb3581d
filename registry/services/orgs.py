"""Organizations, memberships and teams. Org admins manage their org; superusers create orgs."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from registry import validation
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import LockLevel, Membership, Organization, Role, ServiceAccount, Team
from registry.models.orgs import slug_validator
from registry.permissions import require_org
from registry.services.activity import chain_start, event_record

User = get_user_model()

ORG_SETTINGS = ("name", "default_lock_level", "required_approvals", "closed_is_final")
# Settings an org admin changes once the org exists: a new org has no team to name.
ORG_UPDATABLE = (*ORG_SETTINGS, "default_reviewers")


def _clean_settings(changes: dict, org: Organization | None = None) -> dict:
    allowed = ORG_SETTINGS if org is None else ORG_UPDATABLE
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise Invalid(f"unknown organization settings {unknown}; allowed: {list(allowed)}")
    team = changes.get("default_reviewers")
    if team is not None and not (isinstance(team, Team) and team.org_id == org.pk):
        raise Invalid(f"default reviewers must be a team of {org.slug}")
    if "name" in changes and not (isinstance(changes["name"], str) and changes["name"].strip()):
        raise Invalid("name must be a non-empty string")
    if "name" in changes:
        validation.short_text(changes["name"], "name", 200)
    if "default_lock_level" in changes and changes["default_lock_level"] not in LockLevel.values:
        raise Invalid(f"default_lock_level must be one of {LockLevel.values}")
    if "required_approvals" in changes:
        value = changes["required_approvals"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
            raise Invalid("required_approvals must be a whole number from 1 to 20")
    if "closed_is_final" in changes and not isinstance(changes["closed_is_final"], bool):
        raise Invalid("closed_is_final must be true or false")
    return changes


def _require_admin(actor, org: Organization) -> None:
    """An org admin acts, or the system (actor=None: a management command, a sign-in's
    group mapping), which is recorded as nobody."""
    if actor is not None:
        require_org(actor, org, "admin")


@transaction.atomic
def org_create(*, actor, slug: str, name: str, admin=None, **settings) -> Organization:
    """Superusers (or the system, actor=None, from a management command) create
    organizations; `admin` (default: the actor) becomes the first org admin."""
    if actor is not None and not (actor.is_active and actor.is_superuser):
        raise Forbidden("only a superuser may create an organization")
    admin = admin or actor
    if admin is None:
        raise Invalid("an organization needs a first admin")
    try:
        slug_validator(slug)
    except Exception:
        raise Invalid(f"organization slug {slug!r}: {slug_validator.message}") from None
    _clean_settings({"name": name, **settings})
    if Organization.objects.filter(slug=slug).exists():
        raise Conflict(f"organization {slug} already exists")
    org = Organization.objects.create(slug=slug, name=name.strip(), **settings)
    chain_start(org)
    Membership.objects.create(org=org, user=admin, role=Role.ADMIN)
    event_record(
        actor=actor,
        org=org,
        verb="org.created",
        target=org,
        changes={field: [None, getattr(org, field)] for field in ORG_SETTINGS},
        data={"admin": admin.get_username()},
    )
    return org


@transaction.atomic
def org_update(*, actor, org: Organization, **changes) -> Organization:
    """Change org settings (name, default lock level, approvals, compliance mode, the team
    of default reviewers)."""
    require_org(actor, org, "admin")
    _clean_settings(changes, org)
    # No-key: events and memberships inserted meanwhile reference this row (key-share).
    org = Organization.objects.select_for_update(no_key=True).get(pk=org.pk)
    if org.closed_is_final and changes.get("closed_is_final") is False:
        # Turning compliance mode off would let closed versions be lowered after all.
        raise Forbidden("compliance mode cannot be turned off once on")
    diff = {}
    for field, value in changes.items():
        old = getattr(org, field)
        if old != value:
            diff[field] = [_shown(old), _shown(value)]
            setattr(org, field, value)
    if not diff:
        return org
    org.save()
    event_record(actor=actor, org=org, verb="settings.changed", target=org, changes=diff)
    return org


def _shown(value):
    return value.name if isinstance(value, Team) else value


def admins_left(org: Organization, without_user_id: int) -> bool:
    """Whether `org` has an active admin besides the user `without_user_id`."""
    return (
        Membership.objects.filter(org=org, role=Role.ADMIN, user__is_active=True)
        .exclude(user_id=without_user_id)
        .exists()
    )


def locked_user(user):
    """The user's row, locked: joining an org and deactivating (registry.services.members)
    decide on the user's memberships and activity under this one lock."""
    return User.objects.select_for_update().get(pk=user.pk)


@transaction.atomic
def membership_set(*, actor, org: Organization, user, role: str = Role.MEMBER) -> Membership:
    """Add a user to an org, or change their role. An org always keeps one admin. A service
    account stays a member of its own org only, and never an admin."""
    _require_admin(actor, org)
    if role not in Role.values:
        raise Invalid(f"role must be one of {Role.values}")
    user = locked_user(user)
    if not user.is_active:
        raise Invalid(f"user {user.get_username()} is inactive")
    account = ServiceAccount.objects.filter(user=user).first()
    if account is not None and account.org_id != org.pk:
        raise Invalid(f"{user.get_username()} is a service account of another organization")
    if account is not None and role == Role.ADMIN:
        raise Invalid(f"{user.get_username()} is a service account: it cannot be an org admin")
    membership = Membership.objects.select_for_update().filter(org=org, user=user).first()
    if membership is None:
        membership = Membership.objects.create(org=org, user=user, role=role)
        event_record(
            actor=actor,
            org=org,
            verb="membership.created",
            target=membership,
            changes={"user": [None, user.get_username()], "role": [None, role]},
        )
        return membership
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and not admins_left(org, user.pk):
        raise Conflict(f"{user.get_username()} is the last admin of {org.slug}")
    old = membership.role
    membership.role = role
    membership.save()
    event_record(
        actor=actor,
        org=org,
        verb="membership.updated",
        target=membership,
        changes={"role": [old, role]},
        data={"user": user.get_username()},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor, org: Organization, user) -> None:
    _require_admin(actor, org)
    membership = Membership.objects.select_for_update().filter(org=org, user=user).first()
    if membership is None:
        raise NotFound(f"{user.get_username()} is not a member of {org.slug}")
    if membership.role == Role.ADMIN and not admins_left(org, user.pk):
        raise Conflict(f"{user.get_username()} is the last admin of {org.slug}")
    if ServiceAccount.objects.filter(user=user, org=org).exists():
        raise Conflict(
            f"{user.get_username()} is a service account of {org.slug}: deactivate it instead"
        )
    for team in Team.objects.filter(org=org, group__user=user):
        team.group.user_set.remove(user)
    event_record(
        actor=actor,
        org=org,
        verb="membership.deleted",
        target=membership,
        changes={"user": [user.get_username(), None], "role": [membership.role, None]},
    )
    membership.delete()


@transaction.atomic
def team_create(*, actor, org: Organization, name: str) -> Team:
    require_org(actor, org, "admin")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise Invalid("team name must be 1-100 characters")
    name = validation.short_text(name.strip(), "team name", 100)
    if Team.objects.filter(org=org, name=name).exists():
        raise Conflict(f"team {name} already exists in {org.slug}")
    try:
        with transaction.atomic():
            group = Group.objects.create(name=Team.group_name(org, name))
    except IntegrityError:
        raise Conflict(f"a group named {Team.group_name(org, name)} already exists") from None
    team = Team.objects.create(org=org, name=name, group=group)
    event_record(
        actor=actor, org=org, verb="team.created", target=team, changes={"name": [None, name]}
    )
    return team


def org_members_named(org: Organization, usernames) -> list:
    """The members of `org` called `usernames`; Invalid naming those who are not (whether
    or not such a user exists elsewhere: another org's users are not told apart)."""
    wanted = set(usernames)
    users = list(User.objects.filter(username__in=wanted, memberships__org=org))
    missing = sorted(wanted - {user.get_username() for user in users})
    if missing:
        raise Invalid(f"not members of {org.slug}: {', '.join(missing)}")
    return users


@transaction.atomic
def team_set_members(*, actor, team: Team, users) -> Team:
    """Make the team's members exactly `users`, who must all belong to the team's org."""
    _require_admin(actor, team.org)
    users = list(users)
    member_ids = set(
        Membership.objects.filter(org=team.org, user__in=users).values_list("user_id", flat=True)
    )
    outsiders = sorted(u.get_username() for u in users if u.pk not in member_ids)
    if outsiders:
        raise Invalid(f"not members of {team.org.slug}: {', '.join(outsiders)}")
    before = sorted(team.group.user_set.values_list("username", flat=True))
    team.group.user_set.set(users)
    after = sorted(u.get_username() for u in users)
    if before != after:
        event_record(
            actor=actor,
            org=team.org,
            verb="team.updated",
            target=team,
            changes={"members": [before, after]},
        )
    return team


@transaction.atomic
def team_delete(*, actor, team: Team) -> None:
    require_org(actor, team.org, "admin")
    if Organization.objects.filter(pk=team.org_id, default_reviewers=team).exists():
        # Through the service, so that the org's settings change is an event of its own.
        org_update(actor=actor, org=team.org, default_reviewers=None)
    event_record(
        actor=actor,
        org=team.org,
        verb="team.deleted",
        target=team,
        changes={"name": [team.name, None]},
    )
    group = team.group
    team.delete()
    group.delete()
