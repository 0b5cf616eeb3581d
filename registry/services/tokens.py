"""Personal API tokens: made once, stored hashed, revoked, checked on each request."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from registry import sql
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ApiToken

TOKEN_PREFIX = "mv_"
LAST_USED_PRECISION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    """What is stored of a token: the SHA-256 of its plaintext, in hex."""
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_create(
    *, actor, user, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Make a token for `user` (oneself, or a superuser for anyone) and return it with its
    plaintext, which is never stored and cannot be shown again."""
    if actor.pk != user.pk and not actor.is_superuser:
        raise Forbidden("a token is made by its own user")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise Invalid("a token needs a name of 1-100 characters")
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("the expiry must be in the future")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip(), prefix=raw[:8], hashed=token_hash(raw), expires_at=expires_at
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Revoke a token (its user, or a superuser); revoking twice changes nothing."""
    token = ApiToken.objects.select_for_update().filter(pk=token.pk).first()
    if token is None or (token.user_id != actor.pk and not actor.is_superuser):
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_authenticate(raw: str):
    """The active user a live token belongs to, else None. The last use is written at
    most once a minute, so that a busy pipeline does not write on every request."""
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
    return token.user
