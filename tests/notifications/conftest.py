"""Fixtures of the notification tests: a local webhook receiver, and real Redis brokers and
Celery workers for the `services` tests (redis DB 12/13 of the shared server, or a
redis-server of the test's own)."""

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection

from bench.workers import (
    Worker,
    WorkerFailed,
    database_url,
    forget_broker_connections,
    start_worker,
)
from tests.conftest import missing_service

SHARED_BROKER = "redis://127.0.0.1:6379/12"
WORKER_READY_TIMEOUT = 30


@pytest.fixture(autouse=True)
def broker_not_remembered_down() -> Iterator[None]:
    """A broker failure is remembered for a few seconds (notifications.tasks.BROKER_BACKOFF):
    no test inherits one from the test before it, nor leaves one to the next."""
    from notifications import tasks

    tasks._broker_down_until = 0.0
    yield
    tasks._broker_down_until = 0.0


# A local webhook receiver -----------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of `statuses` (the last one repeats), records it.
    `arrived` counts the POSTs that came in, answered or still held for `delay`."""

    port: int = 0
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    location: str = ""
    hits: list[Hit] = field(default_factory=list)
    arrived: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ok_hits(self) -> list[Hit]:
        with self.lock:
            return [
                hit for hit, status in zip(self.hits, self._answered, strict=False) if status < 300
            ]

    def __post_init__(self):
        self._answered: list[int] = []

    def answer(self) -> int:
        with self.lock:
            index = min(len(self._answered), len(self.statuses) - 1)
            status = self.statuses[index]
            self._answered.append(status)
            return status

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"{what} within {timeout} s (receiver had {len(self.hits)} hits)")
            time.sleep(0.05)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`committed(service, **kwargs)`: run a service and its after-commit hooks (eager
    Celery: the dispatch runs here)."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.arrived += 1
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.hits.append(Hit(self.path, dict(self.headers.items()), body))
            status = state.answer()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# Redis and Celery workers -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture
def shared_broker() -> str:
    """Redis DB 12 of the shared server (never another DB: other suites use theirs)."""
    url = os.environ.get("CELERY_BROKER_URL") or SHARED_BROKER
    if not url.startswith("redis://") or url.rsplit("/", 1)[-1] not in ("12", "13"):
        url = SHARED_BROKER
    if not redis_answers(url):
        missing_service(f"needs Redis, which does not answer at {url} (start redis-server)")
    return url


@dataclass
class OwnRedis:
    """A redis-server of the test's own, on a spare port, without persistence."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/13"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline:
                pytest.fail("the test's redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if not any(
        os.access(os.path.join(d, "redis-server"), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
    ):
        missing_service("needs redis-server on PATH for a broker of the test's own")
    own = OwnRedis(port=free_port())
    yield own
    own.stop()


@dataclass
class Workers:
    """Starts Celery workers on this test's database, a queue of its own and `broker`."""

    settings: object
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    queue: str = field(default_factory=lambda: f"mv-notify-test-{uuid.uuid4().hex[:12]}")
    started: list[Worker] = field(default_factory=list)
    broker: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def mail_dir(self) -> Path:
        return self.tmp_path / "worker-var" / "mail"

    def use_broker(self, url: str) -> None:
        """Send this process's tasks to `url` (the test stops running them eagerly)."""
        self.broker = url
        # Celery reads CELERY_BROKER_URL from the environment before the settings.
        self.monkeypatch.setenv("CELERY_BROKER_URL", url)
        self.settings.CELERY_BROKER_URL = url
        self.settings.CELERY_TASK_ALWAYS_EAGER = False
        self.settings.CELERY_TASK_DEFAULT_QUEUE = self.queue
        celery_app = forget_broker_connections()
        assert celery_app.conf.task_always_eager is False
        assert celery_app.conf.broker_url == url

    def start(self, *, as_deployed: bool = False) -> Worker:
        """A lean worker (solo pool), or with `as_deployed` the one `make worker` starts
        (prefork pool, embedded beat: its schedule file in the worker's VAR_DIR)."""
        worker = start_worker(
            broker=self.broker,
            queue=self.queue,
            hostname=f"{self.queue}-{len(self.started)}",
            log_path=self.tmp_path / f"worker-{len(self.started)}.log",
            as_deployed=as_deployed,
            env={
                "SECRET_KEY": os.environ.get("SECRET_KEY") or "test-only-not-a-secret",
                "DEBUG": "false",
                "DATABASE_URL": database_url(connection.settings_dict),
                # As deployed: the default connection lifetime, whatever the environment says.
                "DATABASE_CONN_MAX_AGE": "",
                "VAR_DIR": str(self.tmp_path / "worker-var"),
                "EMAIL_HOST": "",
                "WEBHOOK_ALLOW_PRIVATE": "true",
                "WEBHOOK_RETRY_BASE": "1",
                "WEBHOOK_TIMEOUT": "3",
                "SITE_URL": "https://modelvault.example",
                "CELERY_TASK_DEFAULT_QUEUE": self.queue,  # its follow-up tasks too
                **self.extra_env,
            },
        )
        self.started.append(worker)
        try:
            worker.wait_ready(WORKER_READY_TIMEOUT)
        except WorkerFailed as exc:
            pytest.fail(str(exc))
        return worker

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.started)


@pytest.fixture
def workers(settings, tmp_path, monkeypatch, transactional_db) -> Iterator[Workers]:
    group = Workers(settings=settings, tmp_path=tmp_path, monkeypatch=monkeypatch)
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.SITE_URL = "https://modelvault.example"
    try:
        yield group
    finally:
        for worker in group.started:
            worker.stop()
        forget_broker_connections()
        if group.broker and redis_answers(group.broker):
            import redis

            redis.Redis.from_url(group.broker).delete(
                group.queue,
                f"_kombu.binding.{group.queue}",
                f"_kombu.binding_permanent.{group.queue}",
                "unacked",
                "unacked_index",
            )
