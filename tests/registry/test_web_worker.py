"""The web server's worker (config/workers.py) under a real gunicorn: a thread keeps
serving the keep-alive connection it answered, never while another connection waits for
a thread, and the collector is tuned after the application loads."""

import contextlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(tmp_path: Path, **env: str):
    port = free_port()
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "test-only-not-a-secret",
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": "",
        **env,
    }
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "tests.registry.worker_app",
            "--worker-class",
            "config.workers.KeepAliveThreadWorker",
            "--workers",
            "1",
            "--threads",
            "1",
            "--keep-alive",
            "30",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if time.monotonic() > deadline:
                pytest.fail("gunicorn did not listen within 30 s")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ask(connection: http.client.HTTPConnection) -> dict:
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    return json.loads(response.read())


@pytest.mark.parametrize("linger", ["2", "0"])
def test_it_answers_every_request_of_a_keep_alive_connection(tmp_path, linger):
    with server(tmp_path, SERVER_KEEPALIVE_LINGER_MS=linger) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answers = [ask(connection) for _ in range(20)]
        connection.close()

    assert len({answer["pid"] for answer in answers}) == 1


def test_a_lingering_thread_yields_to_a_connection_that_waits_for_it(tmp_path):
    # One thread, and a linger far longer than the clients' patience: whichever connection
    # the thread lingers on, a request on the other one must be answered at once.
    with server(tmp_path, SERVER_KEEPALIVE_LINGER_MS="60000") as port:
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ask(first)  # the thread now lingers on the first connection
        ask(second)  # ... and must hand it back to answer this one
        for _ in range(5):  # back and forth, each while the thread lingers on the other
            ask(first)
            ask(second)
        first.close()
        second.close()


def test_it_hands_a_connection_back_when_a_request_waits_behind_it(tmp_path):
    # The second connection's request is queued while the first sends its requests back to
    # back: it must be answered although the first never pauses for the linger time.
    with server(tmp_path, SERVER_KEEPALIVE_LINGER_MS="60000") as port:
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ask(first)
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        second.request("GET", "/")
        for _ in range(3):
            ask(first)
        answer = second.getresponse()
        assert answer.status == 200
        answer.read()
        ask(first)
        first.close()
        second.close()


@pytest.fixture
def lingering_worker():
    """A worker as gunicorn's arbiter makes it, for its linger alone: (worker, its side of
    a connection, the client's side)."""
    from gunicorn.config import Config

    from config.workers import KeepAliveThreadWorker

    made = []

    def make(linger_ms: int):
        worker = KeepAliveThreadWorker(1, os.getpid(), [], None, 30, Config(), None)
        worker._linger_ms = linger_ms  # as load_wsgi() sets it from the settings
        ours, theirs = socket.socketpair()
        made.append((worker, ours, theirs))
        buffer = types.SimpleNamespace(unreader=types.SimpleNamespace(buf=io.BytesIO()))
        return worker, types.SimpleNamespace(sock=ours, parser=buffer), theirs

    yield make
    for worker, ours, theirs in made:
        worker.tmp.close()
        ours.close()
        theirs.close()


def test_a_woken_linger_leaves_nothing_in_its_pipe(lingering_worker, monkeypatch):
    import threading

    from gunicorn.workers.gthread import ThreadWorker

    monkeypatch.setattr(ThreadWorker, "enqueue_req", lambda self, conn: None)
    worker, conn, client = lingering_worker(60_000)
    woken = threading.Timer(0.2, worker.enqueue_req, args=(object(),))
    woken.start()
    started = time.monotonic()
    assert worker._next_request_here(conn) is False  # a connection waits: hand this one back
    assert time.monotonic() - started < 10
    assert worker._lingering == []
    # Nothing is left in the pipe to cut the next linger short.
    worker._waiting = 0
    client.send(b"GET / HTTP/1.1\r\n")
    assert worker._next_request_here(conn) is True
    read_end = worker._wake_pipe()[0]
    with pytest.raises(BlockingIOError):
        os.read(read_end, 1)


def test_a_stale_wake_up_byte_does_not_end_a_linger_early(lingering_worker):
    worker, conn, client = lingering_worker(300)
    os.write(worker._wake_pipe()[1], b"\0")  # left behind, as after an interrupted linger
    started = time.monotonic()
    assert worker._next_request_here(conn) is False  # no request came
    assert time.monotonic() - started >= 0.29
    with pytest.raises(BlockingIOError):
        os.read(worker._wake_pipe()[0], 1)


def test_it_freezes_the_loaded_heap_and_raises_the_collectors_threshold(tmp_path):
    with server(tmp_path) as port:
        tuned = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    with server(tmp_path, SERVER_GC_THRESHOLD="0") as port:
        plain = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))

    assert tuned["gc_threshold"] == 20000
    assert tuned["gc_frozen"] > 10000
    assert plain["gc_threshold"] == 700
    assert plain["gc_frozen"] == 0
