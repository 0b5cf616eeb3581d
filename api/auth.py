"""Who is calling: an API token (Authorization: Bearer) or the browser session, whose
unsafe requests must carry the CSRF token. An address that sent too many wrong tokens is
refused before its token is even looked up (api/throttle.py). A read-only token is refused
every change here, whatever the endpoint (403), and a token bound to an organization is
confined to it by the permission checks (registry.models.catalog.confined_away)."""

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from api import throttle
from config.network import client_address
from registry.services.tokens import refuse_read_only, token_authenticate

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str, *, changes: bool | None = None) -> Any:
        """The token's user, or None. `changes` says whether the request may change
        anything; by default, whether its method is unsafe. (A surface whose POST only
        reads, such as MLflow's get-latest-versions, passes changes=False.)"""
        address = client_address(request)
        throttle.refuse_if_blocked(address)
        user = token_authenticate(token)
        if user is None:
            throttle.failure_record(address)
            return None
        if changes is None:
            changes = request.method not in SAFE_METHODS
        if changes:
            refuse_read_only(user)
        request.user = user
        return user


class Session(SessionAuth):
    def __call__(self, request: HttpRequest) -> Any:
        # No session, no CSRF question: the caller is simply not authenticated (401).
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


AUTH = [BearerToken(), Session(csrf=True)]
