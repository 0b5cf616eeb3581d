"""The address a request comes from, the one that the login lockout (django-axes) and the
API's failed-token limit count per (settings.TRUSTED_PROXY_COUNT)."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind N trusted proxies the Nth address from the end of
    X-Forwarded-For: each proxy appends the address it was called from, so the entries
    before those are the client's own words and could be anything. None when there is no
    IP address there (a Unix socket, a proxy count larger than the proxies)."""
    candidate = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        candidate = forwarded[-count].strip() if len(forwarded) >= count else ""
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
