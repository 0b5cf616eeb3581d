"""Bad input and a busy database never reach a 500 (docs/api.md, Errors): a JSON body over
DATA_UPLOAD_MAX_MEMORY_SIZE is the error JSON's 413 (an artifact's streamed PUT has no such
limit), and SQLite's "database is locked" is 503 with Retry-After. The lock is forced
through the database connection's execute wrapper: every write fails as SQLite's would."""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client

from config.database import RETRY_AFTER
from config.errors import server_error
from registry.models import ActivityEvent, Artifact, RegisteredModel
from tests.api.conftest import error_code

V1 = "/orgs/acme/models/fraud/versions/1"
THREE_MB = 3 * 1024 * 1024


def big(field: str) -> dict:
    return {field: "x" * THREE_MB}


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/orgs/acme/models", {"name": "huge", **big("description")}),
        ("PATCH", "/orgs/acme/models/fraud", big("readme")),
        ("PATCH", V1, big("description")),
        ("POST", f"{V1}/comments", big("body")),
        ("POST", f"{V1}/stage-requests", {"stage": "staging", **big("comment")}),
    ],
)
def test_it_answers_413_to_a_json_body_over_the_limit(
    api, version, alice_token, method, path, body
):
    events = ActivityEvent.objects.count()

    response = api(method, path, alice_token, body)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "larger than the limit of 2621440 bytes" in error["message"]
    assert error["details"] == {"limit": 2621440}
    assert ActivityEvent.objects.count() == events
    assert not RegisteredModel.objects.filter(name="huge").exists()


def test_it_answers_413_to_a_form_body_over_the_limit_with_a_session(alice, version):
    # A session-authenticated POST of a form is read by the CSRF check, before the view.
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")  # the page sets the CSRF cookie, as a browser's session has it
    assert "csrftoken" in client.cookies

    response = client.post(
        f"/api/v1{V1}/comments",
        data="body=" + "x" * THREE_MB,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413
    assert error_code(response) == "too_large"


def test_it_still_takes_an_artifact_larger_than_the_limit(api, version, alice_token):
    data = b"w" * (THREE_MB + 1)
    digest = hashlib.sha256(data).hexdigest()

    response = api("PUT", f"{V1}/artifacts/big.bin", alice_token, data=data)

    assert response.status_code == 201
    assert response.json()["sha256"] == digest
    assert Artifact.objects.get(version=version, path="big.bin").blob.size == THREE_MB + 1


@contextmanager
def database_fails_writes(message: str) -> Iterator[None]:
    """Every INSERT, UPDATE and DELETE on this connection fails with `message`, before it
    reaches the database, as SQLite's do when another writer holds the lock too long."""

    def refuse(execute, sql, params, many, context):
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise OperationalError(message)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        yield


def test_it_answers_503_with_retry_after_when_the_database_is_locked(api, version, alice_token):
    assert api("GET", V1, alice_token).status_code == 200  # the token's last use, written
    events = ActivityEvent.objects.count()

    with database_fails_writes("database is locked"):
        response = api("POST", f"{V1}/comments", alice_token, {"body": "lgtm"})

    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert response.json() == {
        "error": {
            "code": "unavailable",
            "message": f"the database is busy with other writes: try again in {RETRY_AFTER} "
            "seconds",
            "details": {"retry_after": RETRY_AFTER},
        }
    }
    assert ActivityEvent.objects.count() == events


def test_it_answers_503_for_a_lock_met_while_authenticating(api, version, alice_token):
    # A token's first use is written before the view runs, in the authentication.
    with database_fails_writes("database is locked"):
        response = api("GET", V1, alice_token)

    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert error_code(response) == "unavailable"


def test_it_answers_the_error_json_for_a_lock_past_the_api_handlers(rf):
    # What Django's handler500 answers, for a lock raised outside the API's views (a
    # middleware's write): the API's error JSON under /api/.
    try:
        raise OperationalError("database is locked")
    except OperationalError:
        response = server_error(rf.get("/api/v1/orgs/acme/models"))

    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert json.loads(response.content)["error"]["code"] == "unavailable"


def test_it_leaves_other_database_failures_a_500(version, alice_token):
    client = Client(raise_request_exception=False)

    with database_fails_writes("disk I/O error"):
        response = client.post(
            f"/api/v1{V1}/comments",
            data=json.dumps({"body": "lgtm"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {alice_token}"},
        )

    assert response.status_code == 500
    assert "Retry-After" not in response


def test_a_failure_of_the_server_is_the_apis_json_500_too(monkeypatch, model, alice):
    """Not a refusal but a bug: still the API's error shape, never Django's HTML page."""
    from django.test import Client

    from api import catalog
    from registry.services.tokens import token_create

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(catalog, "model_json", broken)
    token = token_create(actor=alice, user=alice, name="t")[1]
    response = Client(raise_request_exception=False).get(
        f"/api/v1/orgs/acme/models/{model.name}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "a bug" not in response.content.decode()  # the log has it, not the caller
