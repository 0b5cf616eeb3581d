"""API fixtures: a token per member of the cast, and `api`, a client that sends it."""

import json
from typing import Any

import pytest
from django.test import Client

from registry.services.tokens import token_create


def _token(user) -> str:
    return token_create(actor=user, user=user, name="tests")[1]


@pytest.fixture
def admin_token(admin) -> str:
    return _token(admin)


@pytest.fixture
def alice_token(alice) -> str:
    return _token(alice)


@pytest.fixture
def bob_token(bob) -> str:
    return _token(bob)


@pytest.fixture
def carol_token(carol) -> str:
    return _token(carol)


@pytest.fixture
def mallory_token(mallory) -> str:
    return _token(mallory)


class Api:
    """Calls /api/v1 with `Authorization: Bearer <token>`; JSON in, response out."""

    def __init__(self) -> None:
        self.client = Client()

    def __call__(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        **query: Any,
    ):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = "/api/v1" + path
        kwargs: dict[str, Any] = {"headers": headers}
        if query:
            kwargs["query_params"] = query
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            kwargs["content_type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/octet-stream"
        return getattr(self.client, method.lower())(url, **kwargs)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def version(model, alice):
    """fraud v1, open, with one artifact, registered by alice."""
    import io

    from registry.services.versions import version_create

    return version_create(
        actor=alice,
        model=model,
        params={"lr": 0.1},
        metrics={"auc": 0.9},
        artifacts={"model.bin": io.BytesIO(b"weights")},
    )


def last_event(org):
    from registry.models import ActivityEvent

    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


def error_code(response) -> str:
    return response.json()["error"]["code"]
