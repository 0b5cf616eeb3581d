"""MLflow's own client (the pinned mlflow-skinny of the dev extra) against a live server,
calling as one member of the cast at a time, and the same endpoints through Django's test
client for what a live server cannot show (query counts, raw answers)."""

import os

# Before mlflow is imported: it starts its usage telemetry on import unless told not to.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import json
import warnings
from typing import Any

import pytest
from django.test import Client
from mlflow import MlflowClient

from registry.services.tokens import token_create

PREFIX = "/mlflow/acme/api/2.0/mlflow/"
STAGES_DEPRECATED = ".*Model registry stages will be removed"


def _token(user) -> str:
    return token_create(actor=user, user=user, name="mlflow tests")[1]


@pytest.fixture
def tokens(cast) -> dict[str, str]:
    return {name: _token(user) for name, user in cast.users.items()}


class As:
    """An MlflowClient whose every call is made as the user of `token`: MLflow's client
    reads MLFLOW_TRACKING_TOKEN from the environment on each request."""

    def __init__(self, uri: str, token: str, monkeypatch: pytest.MonkeyPatch):
        self.uri, self.token, self.monkeypatch = uri, token, monkeypatch
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", self.token)
            with warnings.catch_warnings():
                # MLflow deprecates its stages; Modelvault maps them (docs/mlflow.md).
                warnings.filterwarnings("ignore", STAGES_DEPRECATED, FutureWarning)
                return method(*args, **kwargs)

        return call

    def download(self, uri: str, dst) -> str:
        import mlflow.artifacts

        self.monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", self.token)
        return mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=self.uri, registry_uri=self.uri
        )


@pytest.fixture
def mlflow_as(transactional_db, live_server, tokens, monkeypatch):
    """`mlflow_as("alice")`: MLflow's client as alice, on org acme's MLflow API. No retries:
    a refusal is raised at once, as a server that never answers 5xx allows."""
    uri = f"{live_server.url}/mlflow/acme"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

    def make(name: str, org: str = "acme") -> As:
        return As(f"{live_server.url}/mlflow/{org}", tokens[name], monkeypatch)

    return make


class Raw:
    """The MLflow API through Django's test client, as MLflow's client sends requests: query
    parameters for GET, a JSON body otherwise."""

    def __init__(self) -> None:
        self.client = Client()

    def __call__(self, method: str, endpoint: str, token: str | None = None, **params: Any):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = endpoint if endpoint.startswith("/") else PREFIX + endpoint
        if method == "GET":
            return self.client.get(url, params, headers=headers)
        return getattr(self.client, method.lower())(
            url, json.dumps(params), content_type="application/json", headers=headers
        )


@pytest.fixture
def raw() -> Raw:
    return Raw()
