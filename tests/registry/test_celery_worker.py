"""Blob collection through a real Celery worker and a real Redis broker (SPEC 5).

The worker is a separate process on the test's own PostgreSQL database and artifact folder;
the test commits (transaction=True) so that the worker sees its rows, and its tasks go to a
queue of their own so that no other worker on the same Redis takes them.
"""

import io
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from django.db import connection

from bench.workers import Worker as BaseWorker
from bench.workers import WorkerFailed, database_url, forget_broker_connections, start_worker
from registry.models import Blob
from registry.services.artifacts import artifact_delete
from registry.services.versions import version_create
from registry.storage import blob_exists
from tests.conftest import missing_service

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# The Makefile's test-postgres broker, when the environment names none.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/15"
WORKER_READY_TIMEOUT = 30
COLLECT_TIMEOUT = 30
# One line per finished task, as the worker logs it at INFO.
TASK_DONE = re.compile(r"Task registry\.tasks\.collect_blob\[[^\]]+\] succeeded in \S+: (\w+)")


@pytest.fixture
def broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
    problem = None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        problem = f"Redis does not answer at {url} ({exc}): set CELERY_BROKER_URL"
    if problem:
        missing_service(problem)
    return url


class Worker(BaseWorker):
    def results(self) -> list[str]:
        """What each finished collect_blob task returned, in the order the worker ran them."""
        return TASK_DONE.findall(self.log())

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} within {timeout} s; worker log:\n{self.log()}")
            time.sleep(0.1)

    def wait_for_results(self, count: int) -> None:
        # A task's line is logged just after its transaction commits.
        self.wait_until(
            lambda: len(self.results()) >= count, 10, f"the worker did not log {count} results"
        )


@pytest.fixture
def worker(broker_url, settings, tmp_path, transactional_db) -> Iterator[Worker]:
    """A Celery worker process (solo pool) on this test's database, broker queue and
    artifact folder; the test process stops running tasks eagerly and sends them to it."""
    queue = f"modelvault-test-{uuid.uuid4().hex[:12]}"
    started = start_worker(
        broker=broker_url,
        queue=queue,
        log_path=tmp_path / "worker.log",
        env={
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "test-only-not-a-secret",
            "DEBUG": "false",
            "DATABASE_URL": database_url(connection.settings_dict),
            "VAR_DIR": str(tmp_path / "worker-var"),
            "ARTIFACT_STORAGE": "filesystem",
            "ARTIFACT_ROOT": str(settings.STORAGES["artifacts"]["OPTIONS"]["location"]),
            "ARTIFACT_TMP_DIR": str(settings.ARTIFACT_TMP_DIR),
        },
    )
    worker = Worker(started.process, started.log_path)
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    celery_app = forget_broker_connections()
    try:
        # The app reads Django's settings as they are now: check that it follows them.
        assert celery_app.conf.task_always_eager is False
        assert celery_app.conf.broker_url == broker_url
        try:
            worker.wait_ready(WORKER_READY_TIMEOUT)
        except WorkerFailed as exc:
            pytest.fail(str(exc))
        yield worker
    finally:
        worker.stop()
        forget_broker_connections()
        # The queue and kombu's records of its bindings, so that runs leave nothing behind.
        redis.Redis.from_url(broker_url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )


def upload(content: bytes) -> dict:
    return {"model.bin": io.BytesIO(content)}


def collected(sha256: str) -> Callable[[], bool]:
    return lambda: not Blob.objects.filter(pk=sha256).exists() and not blob_exists(sha256)


def test_it_collects_a_removed_artifacts_blob_in_the_worker(worker, model, alice):
    version = version_create(actor=alice, model=model, artifacts=upload(b"orphan-to-be\n" * 999))
    sha256 = version.artifacts.get().blob_id
    assert blob_exists(sha256)

    artifact_delete(actor=alice, version=version, path="model.bin")

    worker.wait_until(collected(sha256), COLLECT_TIMEOUT, "the worker did not collect the blob")
    worker.wait_for_results(1)
    assert worker.results() == ["True"]


def test_it_keeps_a_blob_another_version_still_uses(worker, model, alice):
    shared = b"weights two versions share\n" * 999
    first = version_create(actor=alice, model=model, artifacts=upload(shared))
    second = version_create(actor=alice, model=model, artifacts=upload(shared))
    sha256 = first.artifacts.get().blob_id
    # A second, unshared blob removed afterwards: the worker runs its queue in order, so
    # once this one is collected the shared blob's task has run too.
    sentinel = version_create(actor=alice, model=model, artifacts=upload(b"sentinel\n" * 999))
    sentinel_sha256 = sentinel.artifacts.get().blob_id

    artifact_delete(actor=alice, version=first, path="model.bin")
    artifact_delete(actor=alice, version=sentinel, path="model.bin")

    worker.wait_until(
        collected(sentinel_sha256), COLLECT_TIMEOUT, "the worker did not collect the sentinel"
    )
    worker.wait_for_results(2)
    assert worker.results() == ["False", "True"]
    assert Blob.objects.filter(pk=sha256).exists()
    assert blob_exists(sha256)
    assert second.artifacts.get().blob_id == sha256
