"""The login page (SPEC 4.6): the password form and, with single sign-on configured, a
"Sign in with <provider>" link (sso/views.py); what a locked-out login sees (django-axes),
on the login page and the admin console's alike; and the security log line of each lockout.

With LOCAL_LOGIN off the page shows the link only; /login/?local=1 shows the password form
for the superusers, the only ones sso.backends.LocalLoginGate lets in by password.
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.network import client_address

security_log = logging.getLogger("modelvault.security")


def login_view(request: HttpRequest) -> HttpResponse:
    """Django's LoginView, told whether to show the password form and the SSO link."""
    context = {
        "sso_enabled": settings.SSO_ENABLED,
        "sso_provider_name": settings.SSO_PROVIDER_NAME,
        "local_login": settings.LOCAL_LOGIN,
        "password_form": settings.LOCAL_LOGIN
        or request.method == "POST"
        or request.GET.get("local") == "1",
    }
    return auth_views.LoginView.as_view(extra_context=context)(request)


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with the lockout page, whatever the login form said. The
    wait is the whole cool-off, an upper bound: it runs from the last counted failure."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"minutes": max(1, -(-seconds // 60)), "login_url": request.path}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


def log_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    """Receives axes' user_locked_out: each refused or locking login, one warning line."""
    security_log.warning(
        "login locked out: username=%r address=%s path=%s",
        username,
        ip_address or client_address(request),
        request.path,
    )
