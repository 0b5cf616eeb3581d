"""A server killed in the middle of an upload (SPEC 3.5): nothing becomes an artifact, and
the scrub (`verify_artifacts`) names what was left and removes it.

The server is the shipped one (gunicorn with gunicorn.conf.py) on a SQLite database and
artifact folder of the test's own, killed with SIGKILL while a client is half-way through a
4 MiB body: no handler, no cleanup runs."""

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.registry.test_web_worker import GUNICORN, ROOT, free_port, running

DECLARED = 4 * 1024 * 1024
SENT = 2 * 1024 * 1024


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def call(port: int, method: str, path: str, token: str, body: dict | None = None) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request(
        method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers
    )
    response = connection.getresponse()
    answer = json.loads(response.read() or b"null")
    assert response.status < 300, answer
    return answer


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_server_killed_mid_upload_leaves_nothing_a_scrub_counts_as_valid(tmp_path):
    var = tmp_path / "var"
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "DATABASE_URL": "",  # the embedded SQLite, in VAR_DIR, on either pass of the suite
        "CELERY_BROKER_URL": "",
        "DEBUG": "false",
        "SECRET_KEY": "test-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }
    assert manage(env, "migrate", "--noinput", "-v", "0").returncode == 0
    tokens_file = tmp_path / "tokens.json"
    assert manage(env, "seed_demo", "--tokens", str(tokens_file)).returncode == 0
    token = json.loads(tokens_file.read_text())["admin"]
    artifacts, staging = var / "artifacts", var / "tmp"
    database = var / "modelvault.sqlite3"
    blobs_before = files_under(artifacts)

    port = free_port()
    command = [str(GUNICORN), "-c", "gunicorn.conf.py", "config.wsgi"]
    server_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"}
    with running(command, port, server_env) as server:
        model = call(port, "GET", "/orgs/acme/models", token)["items"][0]["name"]
        number = call(port, "POST", f"/orgs/acme/models/{model}/versions", token, {})["number"]
        path = f"/api/v1/orgs/acme/models/{model}/versions/{number}/artifacts/cut.bin"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(
                (
                    f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {DECLARED}\r\n\r\n"
                ).encode()
            )
            conn.sendall(b"z" * SENT)
            deadline = time.monotonic() + 30
            # The server has staged what it got (it writes in 4 MiB blocks where it can: the
            # staging file may show 0 bytes until then, so its existence is what counts).
            while not files_under(staging):
                assert time.monotonic() < deadline, "the upload was never staged"
                time.sleep(0.05)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)

    with sqlite3.connect(database) as db:
        assert db.execute(
            "SELECT COUNT(*) FROM registry_artifact WHERE path = 'cut.bin'"
        ).fetchone() == (0,)
        assert db.execute(
            "SELECT COUNT(*) FROM registry_blob WHERE size IN (?, ?)", (SENT, DECLARED)
        ).fetchone() == (0,)
    assert files_under(artifacts) == blobs_before  # no bytes placed as a blob
    [left] = files_under(staging)

    scrub = manage(env, "verify_artifacts")
    assert scrub.returncode == 0, scrub.stderr  # nothing stored is damaged
    assert f"unfinished upload {left}" in scrub.stderr
    assert "0 corrupt, 0 missing; 0 orphaned; 1 unfinished uploads" in scrub.stdout
    kept = manage(env, "verify_artifacts", "--delete-orphans")  # too recent to remove
    assert "(kept: written less than 3600 s ago)" in kept.stderr and left.exists()
    cleaned = manage(env, "verify_artifacts", "--delete-orphans", "--orphan-age", "0")
    assert "1 unfinished uploads (1 deleted)" in cleaned.stdout, cleaned.stderr
    assert files_under(staging) == []
    assert "0 unfinished uploads" in manage(env, "verify_artifacts").stdout
