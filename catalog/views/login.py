"""What a locked-out login sees (django-axes, SPEC 4.6), on the login page and the admin
console's alike, and the security log line of each lockout."""

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.network import client_address

security_log = logging.getLogger("modelvault.security")


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
