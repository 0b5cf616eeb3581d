"""The authentication backends of single sign-on (settings.py lists them).

SsoBackend is mozilla-django-oidc's OIDCAuthenticationBackend (its public backend class):
the library runs the authorization code flow (state, nonce, PKCE, the token request, the ID
token's signature); this backend checks the ID token is this client's from the configured
issuer, and hands the claims to sso.accounts.login_complete. A refusal is a message on the
login page. LocalLoginGate refuses password logins but a superuser's while LOCAL_LOGIN is off.
"""

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from registry.errors import RegistryError
from sso.accounts import groups_of, login_complete

User = get_user_model()
security_log = logging.getLogger("modelvault.security")


class SsoBackend(OIDCAuthenticationBackend):
    def authenticate(self, request, **kwargs):
        if not settings.SSO_ENABLED:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The library checks the signature and the nonce; this, that the token was issued
        by the configured issuer to this client."""
        payload = super().verify_token(token, **kwargs)
        issuer = settings.OIDC_OP_ISSUER
        if issuer and str(payload.get("iss", "")).rstrip("/") != issuer:
            raise SuspiciousOperation("the ID token comes from another issuer")
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token was issued to another client")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        """The account and memberships of this login (sso.accounts.login_complete), from
        the userinfo claims; the groups claim may come in the ID token instead."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo is about another subject than the ID token")
        claim = settings.OIDC_GROUPS_CLAIM
        source = claims if claim in claims else payload
        try:
            groups = groups_of(source, claim)
            return login_complete(issuer=payload.get("iss"), claims=claims, groups=groups)
        except RegistryError as exc:
            security_log.warning("single sign-on refused %s: %s", payload.get("sub"), exc.message)
            messages.error(
                self.request, f"Sign-in with {settings.SSO_PROVIDER_NAME} refused: {exc.message}"
            )
            return None

    def get_user(self, user_id):
        # As Django's ModelBackend: a deactivated user's session ends at its next request.
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


class LocalLoginGate:
    """Before ModelBackend: while LOCAL_LOGIN is off, a password login of anyone but a
    superuser fails here (PermissionDenied stops Django's authenticate at once, and
    django-axes counts it as a failed login), on the login page and the admin console.
    It only authenticates (no get_user): no session is ever this backend's."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if settings.LOCAL_LOGIN or username is None or password is None:
            return None
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None or not user.is_superuser:
            raise PermissionDenied("password login is for superusers only (LOCAL_LOGIN=false)")
        return None
