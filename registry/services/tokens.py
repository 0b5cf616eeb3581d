"""API tokens: made once, stored hashed, scoped and bound to an organization, revoked,
checked on each request (SPEC 4.2, 4.6)."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from registry import sql
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ApiToken, Organization, Role, ServiceAccount, TokenScope
from registry.models.catalog import role_in
from registry.permissions import require_org
from registry.services.activity import event_record

TOKEN_PREFIX = "mv_"
LAST_USED_PRECISION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    """What is stored of a token: the SHA-256 of its plaintext, in hex."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _token_org(user, org: Organization | None, account: ServiceAccount | None) -> Organization:
    """The org a new token of `user` is bound to: a service account's own; else `org`, where
    the user must be a member; else the user's only organization."""
    if account is not None:
        if org is not None and org.pk != account.org_id:
            raise Invalid(f"a token of service account {user.get_username()} is for its own org")
        return account.org
    if org is None:
        orgs = list(Organization.objects.filter(memberships__user=user)[:2])
        if len(orgs) != 1:
            raise Invalid("name the organization the token is for: a token acts in one only")
        return orgs[0]
    if role_in(user, org) is None:
        raise Invalid(f"{user.get_username()} is not a member of {org.slug}")
    return org


@transaction.atomic
def token_create(
    *,
    actor,
    user,
    name: str,
    scope: str = TokenScope.WRITE,
    org: Organization | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for `user` and return it with its plaintext, which is never stored and
    cannot be shown again. Users make their own; an org admin makes those of the org's
    service accounts; a superuser anyone's. The token is bound to one organization (by
    default the user's only one) and is read-only or read-write."""
    account = ServiceAccount.objects.select_related("org").filter(user_id=user.pk).first()
    if account is not None:
        require_org(actor, account.org, "admin")
    elif actor.pk != user.pk and not actor.is_superuser:
        raise Forbidden("a token is made by its own user")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise Invalid("a token needs a name of 1-100 characters")
    if scope not in TokenScope.values:
        raise Invalid(f"scope must be one of {TokenScope.values}")
    if expires_at is not None and timezone.is_naive(expires_at):
        raise Invalid("the expiry needs a time zone, e.g. 2027-01-31T12:00:00Z")
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("the expiry must be in the future")
    if not user.is_active:
        raise Invalid(f"{user.get_username()} is deactivated")
    bound = _token_org(user, org, account)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        prefix=raw[:8],
        hashed=token_hash(raw),
        scope=scope,
        org=bound,
        expires_at=expires_at,
    )
    event_record(
        actor=actor,
        org=bound,
        verb="token.created",
        target=token,
        changes={
            "name": [None, token.name],
            "scope": [None, scope],
            "expires_at": [None, expires_at.isoformat() if expires_at else None],
        },
        data={"user": user.get_username(), "prefix": token.prefix},
    )
    return token, raw


def _may_revoke(actor, token: ApiToken) -> bool:
    if token.user_id == actor.pk or actor.is_superuser:
        return True
    account = ServiceAccount.objects.select_related("org").filter(user_id=token.user_id).first()
    return account is not None and role_in(actor, account.org) == Role.ADMIN


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Revoke a token (its user, an admin of the org of a service account, or a superuser);
    revoking twice changes nothing. Every request reads its token anew, so the next one
    with it is refused."""
    token = ApiToken.objects.select_for_update().filter(pk=token.pk).first()
    if token is None or not _may_revoke(actor, token):
        raise NotFound("token not found")
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    # A token made before tokens were bound to an org reached every org of its user.
    orgs = (
        [token.org]
        if token.org_id
        else Organization.objects.filter(memberships__user=token.user_id)
    )
    for org in orgs:
        event_record(
            actor=actor,
            org=org,
            verb="token.revoked",
            target=token,
            changes={"revoked": [False, True]},
            data={"user": token.user.get_username(), "prefix": token.prefix},
        )
    return token


def refuse_read_only(user) -> None:
    """Forbidden when `user` acts through a read-only token (token_authenticate marks the
    user with it): such a token changes nothing, on any surface."""
    token = getattr(user, "api_token", None)
    if token is not None and token.read_only:
        raise Forbidden(
            "this API token is read-only: it reads but changes nothing; "
            "use a read-write token to make changes"
        )


def token_authenticate(raw: str):
    """The active user a live token belongs to, else None. The user is marked with the
    token (`user.api_token`), whose scope and org the permission checks read. The last use
    is written at most once a minute, so that a busy pipeline does not write on every
    request."""
    if not isinstance(raw, str) or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = sql.token_with_user(token_hash(raw))
    now = timezone.now()
    # ApiToken.objects.active(), judged on the row: revoked or expired tokens fail alike.
    if (
        token is None
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or not token.user.is_active
    ):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        # A conditional update: concurrent requests write once, and no row lock is held.
        ApiToken.objects.filter(pk=token.pk).filter(last_used_at=token.last_used_at).update(
            last_used_at=now
        )
    token.user.api_token = token
    return token.user
