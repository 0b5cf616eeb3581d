"""The identity provider's endpoints, read from its OpenID discovery document.

With only OIDC_OP_ISSUER set, settings.py names each endpoint with `discovered(key)`: a lazy
string (Django's `lazy`, as `reverse_lazy` is for URLs) that reads
`<issuer>/.well-known/openid-configuration` the first time one is used, and keeps the answer
for DISCOVERY_TTL seconds. No request is made while the server starts, so a provider that is
away then costs a failed sign-in, not a server that does not start.
"""

import threading
import time

import requests
from django.conf import settings
from django.utils.functional import lazy

DISCOVERY_TTL = 3600
# The endpoints that mozilla-django-oidc's settings name, by their discovery keys.
KEYS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")

_lock = threading.Lock()
_cache: dict[str, tuple[float, dict]] = {}


class DiscoveryError(Exception):
    """The discovery document could not be read, or does not name what is needed."""


def document(issuer: str | None = None) -> dict:
    """The issuer's discovery document (cached per issuer); DiscoveryError when it cannot
    be read, names another issuer, or lacks an endpoint of KEYS."""
    issuer = (issuer or settings.OIDC_OP_ISSUER).rstrip("/")
    if not issuer:
        raise DiscoveryError("OIDC_OP_ISSUER is not set")
    with _lock:
        cached = _cache.get(issuer)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        found = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryError(f"cannot read {url}: {exc}") from exc
    if not isinstance(found, dict) or str(found.get("issuer", "")).rstrip("/") != issuer:
        raise DiscoveryError(f"{url} names another issuer than {issuer}")
    missing = [key for key in KEYS if not isinstance(found.get(key), str)]
    if missing:
        raise DiscoveryError(f"{url} does not name {', '.join(missing)}")
    with _lock:
        _cache[issuer] = (time.monotonic() + DISCOVERY_TTL, found)
    return found


def _endpoint(key: str) -> str:
    return document()[key]


# A setting whose value is read from the discovery document when first used.
discovered = lazy(_endpoint, str)


def forget() -> None:
    """Drop every cached document (the tests, and a provider whose endpoints moved)."""
    with _lock:
        _cache.clear()
