"""The people of an organization, run by its admins (SPEC 4.6): invitations, deactivation
and service accounts. Memberships, roles and teams are registry.services.orgs.

A user is global, an organization is not: one org's admin changes a user as a whole (sets
their first password, deactivates them) only while the user belongs to no other org. A
member of several orgs is removed from the org instead (membership_remove), and keeps
their account and their other memberships.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from registry import validation
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import Membership, Organization, Role, ServiceAccount
from registry.models.orgs import service_account_name_validator
from registry.permissions import require_org
from registry.services.activity import event_record
from registry.services.orgs import admins_left, locked_user, membership_set

User = get_user_model()
username_validator = UnicodeUsernameValidator()


def set_password_link(user) -> str:
    """An absolute one-time link that lets `user` set their password (Django's password
    reset tokens: it stops working once a password is set, or after
    PASSWORD_RESET_TIMEOUT)."""
    path = reverse(
        "catalog:password-set",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return f"{settings.SITE_URL}{path}"


def _clean_username(username: str) -> str:
    if not isinstance(username, str) or not 1 <= len(username.strip()) <= 150:
        raise Invalid("a username needs 1-150 characters")
    username = username.strip()
    try:
        username_validator(username)
    except ValidationError:
        raise Invalid(f"username {username!r}: {username_validator.message}") from None
    return username


def _clean_email(email: str) -> str:
    if not isinstance(email, str) or not email or len(email) > 254:
        raise Invalid("an invitation needs an e-mail address of at most 254 characters")
    try:
        validate_email(email)
    except ValidationError:
        raise Invalid(f"{email!r} is not an e-mail address") from None
    return email


def _membership(org: Organization, user) -> Membership:
    membership = Membership.objects.select_for_update().filter(org=org, user=user).first()
    if membership is None:
        raise NotFound(f"{user.get_username()} is not a member of {org.slug}")
    return membership


def _require_only_org(org: Organization, user, what: str) -> None:
    """Conflict unless `user` belongs to no org but `org` (the message names no other)."""
    if Membership.objects.filter(user=user).exclude(org=org).exists():
        raise Conflict(
            f"{user.get_username()} also belongs to another organization, so only its admins "
            f"and yours together could {what}: remove them from {org.slug} instead"
        )


@transaction.atomic
def member_add(*, actor, org: Organization, username: str, role: str = Role.MEMBER) -> Membership:
    """Add an existing, active user to `org` by username (membership_set); one who is a
    member already is a Conflict: change their role instead."""
    require_org(actor, org, "admin")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise Invalid(f"no active user is called {username}: invite them instead")
    if Membership.objects.filter(org=org, user=user).exists():
        raise Conflict(f"{username} is a member already: change their role instead")
    return membership_set(actor=actor, org=org, user=user, role=role)


def _enqueue_invitation(user, org: Organization, actor) -> None:
    from registry.tasks import send_invitation  # the task module imports the services

    user_id, org_id, inviter = user.pk, org.pk, actor.get_username()
    transaction.on_commit(lambda: send_invitation.delay(user_id, org_id, inviter))


@transaction.atomic
def member_invite(
    *,
    actor,
    org: Organization,
    username: str,
    email: str,
    role: str = Role.MEMBER,
    first_name: str = "",
    last_name: str = "",
) -> tuple[Membership, str]:
    """Make a new user in `org` who has no password yet, and return their membership with a
    one-time link to set one: shown to the inviting admin, and e-mailed to the user after
    commit. A username already taken is a Conflict (add that user as a member instead)."""
    require_org(actor, org, "admin")
    username = _clean_username(username)
    email = _clean_email(email)
    if role not in Role.values:
        raise Invalid(f"role must be one of {Role.values}")
    first_name = validation.short_text(first_name or "", "first name", 150)
    last_name = validation.short_text(last_name or "", "last name", 150)
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"a user named {username} already exists: add them as a member instead")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    user.set_unusable_password()
    user.save()
    membership = Membership.objects.create(org=org, user=user, role=role)
    event_record(
        actor=actor,
        org=org,
        verb="user.invited",
        target=membership,
        changes={"user": [None, username], "email": [None, email], "role": [None, role]},
    )
    _enqueue_invitation(user, org, actor)
    return membership, set_password_link(user)


@transaction.atomic
def member_invitation_renew(*, actor, org: Organization, user) -> str:
    """A new set-password link for a member who never set a password nor logged in, and
    belongs to this org only (so that no admin can take over someone else's account)."""
    require_org(actor, org, "admin")
    user = locked_user(user)
    _membership(org, user)
    if ServiceAccount.objects.filter(user=user).exists():
        raise Invalid(f"{user.get_username()} is a service account: it never logs in")
    if user.has_usable_password() or user.last_login is not None:
        raise Conflict(f"{user.get_username()} has set a password already")
    if not user.is_active:
        raise Conflict(f"{user.get_username()} is deactivated: reactivate them first")
    _require_only_org(org, user, "invite them again")
    event_record(
        actor=actor,
        org=org,
        verb="user.invited",
        target=user,
        data={"user": user.get_username(), "again": True},
    )
    _enqueue_invitation(user, org, actor)
    return set_password_link(user)


def _set_active(*, actor, org: Organization, user, active: bool):
    require_org(actor, org, "admin")
    user = locked_user(user)
    membership = _membership(org, user)
    if user.pk == actor.pk:
        raise Invalid("you cannot deactivate or reactivate yourself")
    if user.is_superuser and not actor.is_superuser:
        raise Forbidden(f"{user.get_username()} is a superuser: only a superuser may do this")
    _require_only_org(org, user, "deactivate or reactivate them")
    if user.is_active == active:
        return user
    if not active and membership.role == Role.ADMIN and not admins_left(org, user.pk):
        raise Conflict(f"{user.get_username()} is the last active admin of {org.slug}")
    user.is_active = active
    user.save(update_fields=["is_active"])
    event_record(
        actor=actor,
        org=org,
        verb="user.reactivated" if active else "user.deactivated",
        target=user,
        changes={"is_active": [not active, active]},
    )
    return user


@transaction.atomic
def member_deactivate(*, actor, org: Organization, user):
    """Deactivate a member who belongs to no other org: they can no longer log in, and
    their sessions and API tokens stop working at their next request. Their membership,
    grants and past activity stay (reactivate them to undo)."""
    return _set_active(actor=actor, org=org, user=user, active=False)


@transaction.atomic
def member_reactivate(*, actor, org: Organization, user):
    """Undo member_deactivate: the user's password, sessions and unrevoked tokens work again."""
    return _set_active(actor=actor, org=org, user=user, active=True)


def invitation_send(*, user_id: int, org_id: int, inviter: str) -> bool:
    """E-mail an invited user a fresh set-password link. Nothing is sent once they have a
    password, logged in or were deactivated; returns whether a mail went out."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    org = Organization.objects.filter(pk=org_id).first()
    if user is None or org is None or not user.email:
        return False
    if user.has_usable_password() or user.last_login is not None:
        return False
    days = max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)
    body = (
        f"{inviter} invited you to {org.name} on Modelvault.\n\n"
        f"Your username: {user.get_username()}\n"
        f"Set your password here (the link works once, for {days} days):\n\n"
        f"{set_password_link(user)}\n"
    )
    send_mail(
        f"You are invited to {org.name} on Modelvault",
        body,
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
    )
    return True


@transaction.atomic
def service_account_create(
    *, actor, org: Organization, name: str, description: str = ""
) -> ServiceAccount:
    """A non-login user owned by `org` (username `<org>.<name>`), a member of it, for
    automation; its admins make its tokens and give it grants and teams."""
    require_org(actor, org, "admin")
    if not isinstance(name, str):
        raise Invalid("a service account needs a name")
    try:
        service_account_name_validator(name)
    except ValidationError:
        raise Invalid(f"name {name!r}: {service_account_name_validator.message}") from None
    description = validation.short_text(description or "", "description", 200)
    username = ServiceAccount.username_for(org, name)
    if ServiceAccount.objects.filter(org=org, name=name).exists():
        raise Conflict(f"service account {name} already exists in {org.slug}")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"a user named {username} already exists")
    user = User(username=username)
    user.set_unusable_password()
    user.save()
    account = ServiceAccount.objects.create(org=org, user=user, name=name, description=description)
    Membership.objects.create(org=org, user=user, role=Role.MEMBER)
    event_record(
        actor=actor,
        org=org,
        verb="service_account.created",
        target=account,
        changes={"name": [None, name], "description": [None, description]},
        data={"user": username},
    )
    return account
