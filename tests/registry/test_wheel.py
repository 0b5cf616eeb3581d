"""The server as a wheel: built from the sources, installed in a fresh venv with the pinned
set, and run from a folder outside the checkout with the `modelvault-admin` command and
gunicorn, importing nothing of the checkout (docs/operations.md, "Installing from a wheel").

Slow (a minute or two: the dependencies come from pip's cache or the package index), so
marked `wheel`: CI runs it in the SQLite pass only (the PostgreSQL pass would repeat it).
"""

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.registry.test_web_worker import free_port

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PACKAGES = {
    "config",
    "registry",
    "approvals",
    "catalog",
    "notifications",
    "api",
    "mlflow_api",
    "sso",
    "compliance",
}
# What the copy of the sources leaves out. The build writes build/ and *.egg-info beside
# the sources: in a copy, never in a checkout others are working in.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)
# The environment kept for pip (its cache under HOME, a proxy or index of this host) and
# nothing else: no PYTHONPATH, no DJANGO_SETTINGS_MODULE, no setting of this test run.
KEPT = ("HOME", "LANG", "TMPDIR", "XDG_CACHE_HOME", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
PASSWORD = "wheel-test-Admin-1"


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in KEPT or name.startswith("PIP_") or name.lower().endswith("_proxy")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.defpath}"
    return {**env, **extra}


def check(command: list, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def install(venv: Path, wheel: Path, env: dict[str, str]) -> None:
    """The wheel and its dependencies from the pinned set into the new venv, by the
    checkout's pip (and so from its cache)."""
    command = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install"]
    command += ["-q", "-c", CONSTRAINTS, wheel]
    done = subprocess.run([str(part) for part in command], env=env, capture_output=True, text=True)
    if done.returncode and re.search(r"NewConnectionError|Max retries", done.stderr):
        missing_service(f"installing the wheel needs the package index: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-3000:]


@contextlib.contextmanager
def serving(command: list, cwd: Path, env: dict[str, str], port: int) -> Iterator[None]:
    """The server in a session of its own until the port listens; stopped afterwards."""
    process = subprocess.Popen(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {process.stderr.read().decode()[-3000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, "the server did not listen within 60 s"
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def request(port: int, method: str, path: str, body: str = "", **headers: str):
    """(status, headers, body) of one request to the server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def cookies(headers) -> str:
    return "; ".join(line.split(";", 1)[0] for line in headers.get_all("Set-Cookie") or [])


def test_it_builds_a_wheel_that_installs_and_serves_outside_the_checkout(tmp_path):
    assert ROOT not in tmp_path.parents
    src, dist, venv, site = (tmp_path / name for name in ("src", "dist", "venv", "site"))
    site.mkdir()
    env = clean_env(venv)

    # Built from a copy of the sources, with nothing but the packages in it.
    shutil.copytree(ROOT, src, ignore=NOT_SOURCES)
    check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src], src, env)
    (wheel,) = dist.glob("modelvault_server-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == PACKAGES
    # Every file of every package: modules, migrations, commands, and config/'s templates and
    # static files (the vendored front-end too).
    for package in PACKAGES:
        for path in (src / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(src).as_posix() in names
    assert "config/static/vendor/htmx/htmx.min.js" in names

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    install(venv, wheel, env)

    admin = venv / "bin" / "modelvault-admin"
    server_env = clean_env(
        venv,
        DEBUG="false",
        SECRET_KEY="wheel-test-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        MODELVAULT_ADMIN_PASSWORD=PASSWORD,
    )
    # The command imports the installed packages, never the checkout's; without VAR_DIR it
    # writes in var/ of the current folder, not in site-packages.
    code = "import config; from django.conf import settings as s; print(config.__file__, s.VAR_DIR)"
    config_file, var_dir = check([admin, "shell", "-v", "0", "-c", code], site, server_env).split()
    assert Path(config_file).is_relative_to(venv)
    assert Path(var_dir) == (site / "var").resolve()

    check([admin, "migrate", "--noinput", "-v", "0"], site, server_env)
    check([admin, "collectstatic", "--noinput", "-v", "0"], site, server_env)
    created = check([admin, "create_org", "acme", "--admin", "ada"], site, server_env)
    assert "Created organization acme with admin ada" in created
    assert (site / "var" / "modelvault.sqlite3").is_file()

    port = free_port()
    server_env.update(HOST="127.0.0.1", PORT=str(port), WORKERS="1")
    command = [venv / "bin" / "gunicorn", "-c", "python:config.gunicorn_conf", "config.wsgi"]
    with serving(command, site, server_env, port):
        assert request(port, "GET", "/readyz")[0] == 200

        status, headers, body = request(port, "GET", "/login/")
        assert status == 200
        page = body.decode()
        # The manifest's hashed name: collectstatic gathered the package's own files, and
        # whitenoise serves them.
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)[1]
        assert re.fullmatch(r"/static/modelvault/site\.[0-9a-f]{12}\.css", stylesheet)
        css_status, css_headers, css = request(port, "GET", stylesheet)
        assert css_status == 200
        assert css_headers["Content-Type"].startswith("text/css")
        assert css == (src / "config" / "static" / "modelvault" / "site.css").read_bytes()
        script = re.search(r'<script src="(/static/vendor/htmx/[^"]+)"', page)[1]
        assert request(port, "GET", script)[0] == 200

        # ada, whom create_org made, logs in and finds her organization.
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        status, headers, _ = request(
            port,
            "POST",
            "/login/",
            f"csrfmiddlewaretoken={csrf}&username=ada&password={PASSWORD}",
            Cookie=cookies(headers),
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 302
        status, _, body = request(port, "GET", "/", Cookie=cookies(headers))
        assert status == 200
        assert "acme" in body.decode()
