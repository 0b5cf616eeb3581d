"""The web server's worker (config/workers.py) under a real gunicorn: a thread keeps
serving the keep-alive connection it answered, never while another connection waits for
a thread, and the collector is tuned after the application loads."""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
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


def test_it_hands_a_connection_back_when_another_waits_for_the_thread(tmp_path):
    # One thread, and a linger longer than the clients' patience: while connection A sends
    # its requests back to back, connection B's request must still be answered.
    with server(tmp_path, SERVER_KEEPALIVE_LINGER_MS="60000") as port:
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ask(first)
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        second.request("GET", "/")
        # The lingering thread learns of B when A's next request ends its wait: B must have
        # been accepted and queued for the thread by then.
        time.sleep(0.5)
        ask(first)  # the thread serves A's next request, then sees B waiting
        answer = second.getresponse()
        assert answer.status == 200
        answer.read()
        # And A, back on the poller, is served again.
        ask(first)
        first.close()
        second.close()


def test_it_freezes_the_loaded_heap_and_raises_the_collectors_threshold(tmp_path):
    with server(tmp_path) as port:
        tuned = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    with server(tmp_path, SERVER_GC_THRESHOLD="0") as port:
        plain = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))

    assert tuned["gc_threshold"] == 20000
    assert tuned["gc_frozen"] > 10000
    assert plain["gc_threshold"] == 700
    assert plain["gc_frozen"] == 0
