"""DATABASE_URL=sqlite:///... names the embedded default's kind of database, with the same
options (SPEC 5): a writer takes SQLite's write lock when its transaction starts (IMMEDIATE)
and waits for it (the busy timeout) instead of failing. 20 approvals sent at once to a
gunicorn server (2 processes of 10 threads) on a file database named by the URL, half
through the API and half through the web UI, all succeed: no 500, no 503."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.registry.test_settings import BASE_DIR, SECRET, read_settings, run

APPROVALS = 20

# Run in the server's environment after migrate: the cast, acme/fraud, APPROVALS versions
# each with a pending request to staging by alice, and an API token of bob, the reviewer.
SETUP = """
import json, sys
import django
django.setup()
from approvals.services import request_create
from registry.demo import ensure_cast, ensure_shared_model
from registry.services.tokens import token_create
from registry.services.versions import version_create

cast = ensure_cast(passwords=True)
model = ensure_shared_model(cast, "fraud")
requests = []
for _ in range(int(sys.argv[1])):
    version = version_create(actor=cast.alice, model=model)
    requests.append(request_create(actor=cast.alice, version=version, to_stage="staging").pk)
_, token = token_create(actor=cast.bob, user=cast.bob, name="approvals")
print(json.dumps({"requests": requests, "token": token}))
"""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_it_gives_a_sqlite_url_the_options_of_the_embedded_default(tmp_path):
    var_dir = tmp_path / "var"
    named = tmp_path / "elsewhere.sqlite3"

    default = read_settings(SECRET, var_dir, "DATABASES")["DATABASES"]["default"]
    env = {**SECRET, "DATABASE_URL": sqlite_url(named)}
    by_url = read_settings(env, var_dir, "DATABASES")["DATABASES"]["default"]

    assert default["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert default["OPTIONS"]["timeout"] == 20
    assert by_url["ENGINE"] == default["ENGINE"] == "django.db.backends.sqlite3"
    assert by_url["NAME"] == str(named)
    assert by_url["OPTIONS"] == default["OPTIONS"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, dict]]:
    """gunicorn on a file SQLite database named by DATABASE_URL, migrated and set up; its
    base URL and what SETUP printed."""
    var_dir = tmp_path / "var"
    port = free_port()
    env = {
        **SECRET,
        "DATABASE_URL": sqlite_url(tmp_path / "modelvault.sqlite3"),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "LOG_LEVEL": "ERROR",
    }
    steps = [
        ["manage.py", "migrate", "--noinput", "-v", "0"],
        ["manage.py", "collectstatic", "--noinput", "-v", "0"],  # the pages' static manifest
        ["-c", SETUP, str(APPROVALS)],
    ]
    for step in steps:
        done = run(step, env, var_dir)
        assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout.strip().splitlines()[-1])
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "config.wsgi"],
        cwd=BASE_DIR,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(var_dir),
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": "2",
            "THREADS": str(APPROVALS // 2),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/login/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{(tmp_path / 'gunicorn.log').read_text()}")
            time.sleep(0.2)
        yield base, made
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def logged_in_as_bob(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    client.get("/login/")
    client.post(
        "/login/",
        data={
            "username": "bob",
            "password": "bob-demo",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert "sessionid" in client.cookies
    return client


def test_it_lets_twenty_approvals_at_once_wait_their_turn(server):
    base, made = server
    requests = made["requests"]
    api = httpx.Client(
        base_url=base, timeout=60, headers={"Authorization": f"Bearer {made['token']}"}
    )
    ui = logged_in_as_bob(base)
    csrf = ui.cookies["csrftoken"]
    statuses: list[int | str] = [0] * APPROVALS
    start = threading.Barrier(APPROVALS)

    def approve(i: int) -> None:
        pk = requests[i]
        start.wait(timeout=30)
        try:
            if i % 2:
                answer = api.post(f"/api/v1/stage-requests/{pk}/approve", json={"comment": ""})
            else:
                answer = ui.post(f"/approvals/{pk}/approve/", data={"csrfmiddlewaretoken": csrf})
            statuses[i] = answer.status_code
        except httpx.HTTPError as exc:
            statuses[i] = repr(exc)

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(APPROVALS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert statuses[1::2] == [200] * (APPROVALS // 2), statuses  # the API
    assert statuses[0::2] == [302] * (APPROVALS // 2), statuses  # the UI: back to the page
    for pk in requests:
        state = api.get(f"/api/v1/stage-requests/{pk}").json()
        assert state["status"] == "approved", state
