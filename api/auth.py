"""Who is calling: a personal token (Authorization: Bearer) or the browser session, whose
unsafe requests must carry the CSRF token. An address that sent too many wrong tokens is
refused before its token is even looked up (api/throttle.py)."""

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from api import throttle
from config.network import client_address
from registry.services.tokens import token_authenticate


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        address = client_address(request)
        throttle.refuse_if_blocked(address)
        user = token_authenticate(token)
        if user is None:
            throttle.failure_record(address)
        else:
            request.user = user
        return user


class Session(SessionAuth):
    def __call__(self, request: HttpRequest) -> Any:
        # No session, no CSRF question: the caller is simply not authenticated (401).
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


AUTH = [BearerToken(), Session(csrf=True)]
