"""/healthz and /readyz (SPEC 5): probes by the node's own address, over plain HTTP."""

import contextlib
import socket
import subprocess
import time

import pytest
from django.test import Client

from config.health import VERSION
from tests.registry.test_s3_storage import bucket, s3_endpoint  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def probe(settings) -> Client:
    """A load balancer: by the node's address (not an allowed host), over plain HTTP, with
    the HTTPS redirect on as in production."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["registry.example.com"]
    return Client(HTTP_HOST="10.0.0.5:8000")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_liveness_answers_without_any_io(probe, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = probe.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": VERSION}
    assert response["Cache-Control"] == "no-store"
    assert probe.head("/healthz").status_code == 200


def test_readiness_checks_the_database_and_the_storage(probe):
    response = probe.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["version"]) == ("ready", VERSION)
    assert set(body["checks"]) == {"database", "storage"}  # eager Celery: no broker
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())


def artifacts_in(settings, location) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }


def test_readiness_fails_on_an_artifact_folder_it_cannot_write(probe, settings, tmp_path):
    artifacts_in(settings, tmp_path / "not-yet" / "artifacts")  # made at the first upload
    assert probe.get("/readyz").status_code == 200
    (tmp_path / "file").write_text("not a folder")
    artifacts_in(settings, tmp_path / "file" / "artifacts")
    response = probe.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready" and body["checks"]["database"]["ok"]
    assert "file/artifacts cannot be written" in body["checks"]["storage"]["error"]


def test_readiness_checks_the_broker_when_one_is_configured(probe, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = probe.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert not broker["ok"] and "Connection" in broker["error"] and broker["ms"] < 5000


def test_readiness_follows_a_broker_going_away_and_coming_back(probe, settings):
    """A Redis of the test's own: ready, unready while it is stopped, ready again."""
    port = free_port()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    with own_redis(port):
        response = probe.get("/readyz")
        assert response.status_code == 200, response.json()
        assert response.json()["checks"]["broker"]["ok"]
    assert probe.get("/readyz").status_code == 503
    with own_redis(port):
        assert probe.get("/readyz").status_code == 200


@contextlib.contextmanager
def own_redis(port: int):
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        + ["--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_readiness_reaches_the_bucket_and_names_a_missing_one(probe, bucket, settings):  # noqa: F811
    assert probe.get("/readyz").status_code == 200
    options = settings.STORAGES["artifacts"]["OPTIONS"]
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            **settings.STORAGES["artifacts"],
            "OPTIONS": {**options, "bucket_name": "no-such-bucket"},
        },
    }
    response = probe.get("/readyz")
    assert response.status_code == 503
    assert "404" in response.json()["checks"]["storage"]["error"]


def test_probes_take_only_get_and_head(probe):
    response = probe.post("/readyz")
    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
