"""The web server as shipped: gunicorn with gunicorn.conf.py, and `make serve`."""

import contextlib
import http.client
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
SERVER_VARIABLES = ("HOST", "PORT", "WORKERS", "THREADS", "SERVER_GC_THRESHOLD")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(command: list[str], port: int, env: dict[str, str | None], wait: float = 30):
    """Start the command in a session of its own, wait until the port listens, and stop
    the whole session afterwards (make serve runs gunicorn as its child). A variable set
    to None in env is left out."""
    environ = {name: value for name, value in os.environ.items() if name not in SERVER_VARIABLES}
    environ.update(env)
    environ = {name: value for name, value in environ.items() if value is not None}
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + wait
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not listen within {wait} s")
            time.sleep(0.1)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def probe_server(**env: str):
    """gunicorn with gunicorn.conf.py serving tests/registry/worker_app.py; yields its port."""
    port = free_port()
    command = [str(GUNICORN), "-c", "gunicorn.conf.py", "tests.registry.worker_app"]
    with running(command, port, {"HOST": "127.0.0.1", "PORT": str(port), **env}):
        yield port


def ask(connection: http.client.HTTPConnection, path: str = "/") -> dict:
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
            # The fields after the command name (which may hold spaces) start at ')'.
            if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def read_config(monkeypatch, **env: str) -> dict:
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The file the root gunicorn.conf.py imports, run afresh (an import would keep the first
    # reading of the environment).
    return runpy.run_path(str(ROOT / "config" / "gunicorn_conf.py"))


def test_it_binds_the_loopback_with_a_worker_per_core_by_default(monkeypatch):
    config = read_config(monkeypatch)

    assert config["bind"] == "127.0.0.1:8000"
    assert config["workers"] == os.cpu_count()
    assert config["worker_class"] == "gthread"
    assert config["threads"] == 2
    assert config["accesslog"] is None
    assert config["control_socket_disable"] is True
    assert config["GC_THRESHOLD"] == 20000


def test_it_runs_the_packages_configuration_from_the_checkout():
    from config import gunicorn_conf

    root = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    settings = ("bind", "workers", "worker_class", "threads", "keepalive", "timeout", "raw_env")
    hooks = ("post_worker_init", "on_starting", "child_exit")
    for name in settings + hooks:
        assert root[name] == getattr(gunicorn_conf, name)


def test_it_reads_bind_workers_and_threads_from_the_environment(monkeypatch):
    config = read_config(monkeypatch, HOST="0.0.0.0", PORT="9000", WORKERS="5", THREADS="3")

    assert config["bind"] == "0.0.0.0:9000"
    assert config["workers"] == 5
    assert config["threads"] == 3


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "http"), ("WORKERS", "0"), ("SERVER_GC_THRESHOLD", "-5")]
)
def test_it_refuses_a_count_that_is_no_count(monkeypatch, name, value):
    with pytest.raises(SystemExit, match=f"{name} must be a whole number"):
        read_config(monkeypatch, **{name: value})


def test_it_answers_every_request_of_a_keep_alive_connection_in_workers_from_the_environment():
    with probe_server(WORKERS="2") as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ask(connection)
        sock = connection.sock
        answers = [ask(connection) for _ in range(20)]
        assert connection.sock is sock  # never closed and opened again
        connection.close()
        master = [pid for pid in children(os.getpid()) if answers[0]["pid"] in children(pid)]
        assert len(master) == 1
        # The port listens once the first worker is up; the second may still be booting.
        deadline = time.monotonic() + 30
        while len(children(master[0])) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(master[0])) == 2

    assert {answer["pid"] for answer in answers} == {answers[0]["pid"]}


def test_a_worker_serves_requests_side_by_side_on_its_threads():
    # Each /together request waits for the other: one worker answers both only if two of
    # its threads serve at once.
    with probe_server(WORKERS="1", THREADS="2") as port:

        def together(_) -> dict:
            return ask(http.client.HTTPConnection("127.0.0.1", port, timeout=20), "/together")

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(together, range(2)))

    assert answers[0]["pid"] == answers[1]["pid"]


def test_it_tunes_the_interpreter_and_collector_once_the_application_is_loaded():
    with probe_server(WORKERS="1") as port:
        tuned = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    with probe_server(WORKERS="1", SERVER_GC_THRESHOLD="0") as port:
        plain = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=10))

    assert tuned["switch_interval"] == 0.001
    assert tuned["gc_threshold"] == 20000
    assert tuned["gc_frozen"] > 1000
    assert plain["gc_threshold"] == 700
    assert plain["gc_frozen"] == 0


def test_make_serve_migrates_and_serves_with_production_settings(tmp_path):
    port = free_port()
    env = {
        "DEBUG": None,
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "SECRET_KEY": "test-only-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "VAR_DIR": str(tmp_path),
    }
    command = ["make", "--no-print-directory", "serve", f"PORT={port}", "WORKERS=1"]
    with running(command, port, {**env, "HOST": "127.0.0.1"}, wait=120):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/v1/openapi.json")
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["info"]["title"]
        # collectstatic ran: whitenoise serves the collected files with DEBUG off.
        assert (tmp_path / "staticfiles").is_dir()
