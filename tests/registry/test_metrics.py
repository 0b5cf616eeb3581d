"""Prometheus metrics at /metrics (SPEC 5): the named series, and nobody else's business."""

import http.client
import os
import re
import subprocess
import sys

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from notifications.services import event_dispatch
from registry.models import ActivityEvent
from registry.services.tokens import token_create
from registry.services.versions import version_create
from tests.registry.test_web_worker import GUNICORN, ROOT, free_port, running

pytestmark = pytest.mark.django_db


def scrape(client: Client, **headers) -> dict[str, list]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_it_times_requests_by_route(client, alice_client, model):
    before = scrape(client)["modelvault_http_request_duration_seconds"]
    route = "orgs/<slug:org>/models/<str:model>/"
    alice_client.get(f"/orgs/acme/models/{model.name}/")
    client.get("/healthz")  # probes are not timed
    after = scrape(client)["modelvault_http_request_duration_seconds"]
    name = "modelvault_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": route, "status": "2xx"}
    assert value(after, name, **labels) == value(before, name, **labels) + 1
    assert not [s for s in after if s.labels.get("route", "").startswith("healthz")]


def test_it_counts_uploaded_bytes(client, model, alice):
    version = version_create(actor=alice, model=model)
    token = token_create(actor=alice, user=alice, name="t")[1]
    before = value(scrape(client)["modelvault_upload_bytes"], "modelvault_upload_bytes_total")
    response = Client().put(
        f"/api/v1/orgs/acme/models/{model.name}/versions/{version.number}/artifacts/m.bin",
        b"x" * 1234,
        content_type="application/octet-stream",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    after = value(scrape(client)["modelvault_upload_bytes"], "modelvault_upload_bytes_total")
    assert after == before + 1234


def test_it_reads_the_outbox_lag_and_the_deliveries(client, model, alice, carol):
    from registry.services.registered_models import model_watch

    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # no commit hooks here: not yet dispatched
    families = scrape(client)
    lag = value(families["modelvault_outbox_lag_seconds"], "modelvault_outbox_lag_seconds")
    assert lag > 0
    assert value(families["modelvault_deliveries"], "modelvault_deliveries", status="sent") == 0
    for event in ActivityEvent.objects.all():
        event_dispatch(event_id=event.pk)
    families = scrape(client)
    assert families["modelvault_outbox_lag_seconds"][0].value == 0
    delivered = value(families["modelvault_deliveries"], "modelvault_deliveries", status="sent")
    pending = value(families["modelvault_deliveries"], "modelvault_deliveries", status="pending")
    assert delivered + pending == 1  # carol's e-mail, sent at once in eager mode


@pytest.mark.parametrize(
    ("remote", "headers"),
    [("203.0.113.5", {}), ("127.0.0.1", {"X-Forwarded-For": "203.0.113.5"})],
)
def test_it_is_no_ones_business_but_the_hosts(remote, headers):
    response = Client(REMOTE_ADDR=remote).get("/metrics", headers=headers)
    assert response.status_code == 404 and b"modelvault" not in response.content


def test_a_token_opens_it_to_a_scraper_elsewhere(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    elsewhere = Client(REMOTE_ADDR="203.0.113.5")
    assert elsewhere.get("/metrics").status_code == 404
    assert elsewhere.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 404
    assert scrape(elsewhere, Authorization="Bearer scrape-secret")
    assert Client().get("/metrics").status_code == 404  # the token is now the only way


def test_gunicorns_workers_count_together(tmp_path):
    """The shipped server with two workers: /metrics sums what each worker counted."""
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "DEBUG": "false",
        "SECRET_KEY": "test-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    migrate = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, timeout=120)
    port = free_port()
    server_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "2"}
    command = [str(GUNICORN), "-c", "gunicorn.conf.py", "config.wsgi"]
    with running(command, port, server_env):
        for _ in range(40):  # new connections: both workers answer some
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/api/v1/orgs/acme/models")
            assert connection.getresponse().status == 401
            connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    pattern = (
        r"modelvault_http_request_duration_seconds_count"
        r'\{[^}]*route="api/v1/orgs/<org>/models"[^}]*status="4xx"[^}]*\} (\S+)'
    )
    assert sum(float(n) for n in re.findall(pattern, text)) == 40
    # Each worker wrote its own file, and the scrape summed them.
    pids = {re.sub(r"\D", "", name) for name in os.listdir(tmp_path / "metrics")}
    assert len(pids) >= 2, pids
