"""Who signs in: the account that a provider's identity is, found or made at a login.

The first login of an identity (issuer, subject) links it to the account with its e-mail
address, or makes a new account, and only when the provider says the address is verified
(`email_verified` true): else anyone who can type an address at the provider could take over
the account that has it. Later logins find the account by the identity alone, whatever its
address has become. A superuser's account is never linked by e-mail: the break-glass
accounts stay local (password) only.
"""

import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import validation
from registry.errors import Conflict, Forbidden, Invalid
from registry.models import ServiceAccount
from sso.models import Identity
from sso.services import memberships_sync

User = get_user_model()
NOT_USERNAME = re.compile(r"[^\w.@+-]")


def _verified(claims: dict) -> bool:
    # The standard says a boolean; some providers send the string "true".
    return claims.get("email_verified") in (True, "true")


def _email(claims: dict) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email or len(email) > 254:
        return ""
    try:
        validate_email(email)
    except ValidationError:
        return ""
    return email


def groups_of(claims: dict, claim: str) -> list[str]:
    """The user's groups: the claim's list of names (a single name counts as a list of
    one; no claim, none). Anything else is Invalid: a login that cannot read the groups
    must not take memberships away."""
    value = claims.get(claim)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f"the {claim} claim must be a list of group names")
    return value


def _free_username(claims: dict, email: str) -> str:
    """A username from the claims that no account has yet (base, base-2, base-3...)."""
    wanted = claims.get("preferred_username")
    if not isinstance(wanted, str) or not wanted.strip():
        wanted = email.partition("@")[0]
    base = NOT_USERNAME.sub("", wanted.strip())[:140] or "user"
    candidate, n = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _names(claims: dict) -> dict[str, str]:
    names = {}
    for claim, attribute in (("given_name", "first_name"), ("family_name", "last_name")):
        value = claims.get(claim)
        if isinstance(value, str):
            names[attribute] = validation.storable(claim, value.strip())[:150]
    return names


def _linkable(email: str, issuer: str):
    """The account that a first login with verified `email` links to, or None for a new one."""
    users = list(User.objects.select_for_update().filter(email__iexact=email)[:2])
    if len(users) > 1:
        raise Conflict(f"several accounts have the address {email}: ask an administrator")
    if not users:
        return None
    user = users[0]
    if user.is_superuser:
        raise Forbidden(
            f"the account with the address {email} is an administrator's local account: "
            "it signs in with its password only"
        )
    if ServiceAccount.objects.filter(user=user).exists():
        raise Forbidden(f"the account with the address {email} is a service account")
    if Identity.objects.filter(user=user, issuer=issuer).exists():
        raise Conflict(
            f"the account with the address {email} belongs to another identity at this provider"
        )
    return user


@transaction.atomic
def account_for_login(*, issuer: str, claims: dict):
    """The account of the identity (issuer, claims["sub"]): found by the identity, else
    linked by verified e-mail, else made (module docstring). A verified new address is
    copied to the account."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise Invalid("the provider sent no subject (sub) of at most 255 characters")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 255:
        raise Invalid("the provider sent no issuer (iss) of at most 255 characters")
    email = _email(claims)
    verified = bool(email) and _verified(claims)
    now = timezone.now()
    identity = (
        Identity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is not None:
        user = identity.user
        if verified and email.lower() != user.email.lower():
            taken = User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists()
            if not taken:
                user.email = email
                user.save(update_fields=["email"])
        identity.last_login_at = now
        identity.save(update_fields=["last_login_at"])
        return user
    if not verified:
        raise Forbidden(
            "your e-mail address at the identity provider is not verified: verify it there "
            "and sign in again"
        )
    user = _linkable(email, issuer)
    try:
        with transaction.atomic():
            if user is None:
                user = User(username=_free_username(claims, email), email=email, **_names(claims))
                user.set_unusable_password()
                user.save()
            Identity.objects.create(user=user, issuer=issuer, subject=subject, last_login_at=now)
    except (IntegrityError, ValidationError):
        # Another login of the same identity or name at this instant: the next one links.
        raise Conflict("this account is being set up by another sign-in: try again") from None
    return user


@transaction.atomic
def login_complete(*, issuer: str, claims: dict, groups: Iterable[str]):
    """A login, whole or not at all: the account (account_for_login), then its memberships
    (sso.services.memberships_sync), unless the account is deactivated."""
    user = account_for_login(issuer=issuer, claims=claims)
    if not user.is_active:
        raise Forbidden("your account here is deactivated: ask an administrator")
    memberships_sync(user=user, groups=groups)
    return user
