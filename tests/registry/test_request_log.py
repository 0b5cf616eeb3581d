"""One JSON log line per request, with a request id that follows its tasks (SPEC 5)."""

import json
import logging
import uuid

import pytest
from django.test import Client

from config.requestlog import JsonFormatter, RequestIdFilter, request_id
from registry.services.registered_models import model_watch
from registry.services.tokens import token_create
from tests.registry.test_celery_worker import broker_url, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def request_lines(caplog) -> list[dict]:
    """The request lines as the JSON formatter writes them."""
    formatter, tag = JsonFormatter(), RequestIdFilter()
    lines = []
    for record in caplog.records:
        if record.name == "modelvault.request":
            tag.filter(record)
            lines.append(json.loads(formatter.format(record)))
    return lines


def test_each_request_gets_an_id_and_one_json_line(caplog, alice_client, model):
    caplog.set_level(logging.INFO, logger="modelvault.request")
    path = f"/orgs/acme/models/{model.name}/"
    response = alice_client.get(path)
    assert response.status_code == 200
    rid = response["X-Request-ID"]
    assert len(rid) == 32
    [line] = request_lines(caplog)
    assert line["request_id"] == rid and line["level"] == "INFO"
    assert line["http"]["method"] == "GET" and line["http"]["path"] == path
    assert line["http"]["status"] == response.status_code and line["http"]["user"] == "alice"
    assert line["http"]["route"] == "orgs/<slug:org>/models/<str:model>/"
    assert line["http"]["duration_ms"] >= 0 and line["http"]["bytes"] == len(response.content)


def test_an_api_line_names_the_token_user_and_the_route(caplog, alice, model):
    caplog.set_level(logging.INFO, logger="modelvault.request")
    token = token_create(actor=alice, user=alice, name="t")[1]
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "lb-7"}
    Client().get(f"/api/v1/orgs/acme/models/{model.name}", headers=headers)
    [line] = request_lines(caplog)
    assert line["request_id"] == "lb-7" and line["http"]["user"] == "alice"
    assert line["http"]["route"] == "api/v1/orgs/<org>/models/<model>"


@pytest.mark.parametrize("given", ["two words", "x" * 129, "a\r\nSet-Cookie: x=1", "é"])
def test_it_replaces_a_request_id_it_cannot_trust(client, given):
    rid = client.get("/login/", headers={"X-Request-ID": given})["X-Request-ID"]
    assert rid != given and len(rid) == 32


def test_a_refusal_logged_by_django_carries_the_id_too(caplog, client):
    caplog.set_level(logging.INFO)
    rid = client.get("/no/such/page/")["X-Request-ID"]
    tag = RequestIdFilter()
    [refusal] = [r for r in caplog.records if r.name == "django.request"]
    assert tag.filter(refusal) and refusal.request_id == rid
    assert request_id.get() is None  # forgotten once the response was closed


def test_probes_are_not_logged(caplog, client):
    caplog.set_level(logging.INFO, logger="modelvault.request")
    client.get("/healthz")
    assert request_lines(caplog) == []


def test_every_record_during_a_request_carries_its_id():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "m", None, None)
    token = request_id.set("abc")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    assert json.loads(JsonFormatter().format(record))["request_id"] == "abc"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_request_id_reaches_the_workers_log(worker, alice, carol, model):  # noqa: F811
    """A version registered over the API enqueues its event's dispatch (somebody watches the
    model): the worker's JSON log line for that task carries the request's id."""
    model_watch(actor=carol, model=model)
    rid = f"req-{uuid.uuid4().hex}"
    token = token_create(actor=alice, user=alice, name="t")[1]
    response = Client().post(
        f"/api/v1/orgs/acme/models/{model.name}/versions",
        "{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid},
    )
    assert response.status_code == 201

    def tagged() -> list[dict]:
        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        return [line for line in lines if line["request_id"] == rid]

    worker.wait_until(lambda: bool(tagged()), 20, "no worker line carried the request id")
    assert any("dispatch_event" in line["message"] for line in tagged())
