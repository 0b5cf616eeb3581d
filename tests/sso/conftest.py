"""A real OpenID provider for the single sign-on tests (tests/oidc_provider/): its own
Django project with django-oauth-toolkit, run by runserver as a subprocess on a free loopback
port, with its own SQLite and a new RSA key in a temporary folder; stopped after the session.
`oidc_provider.user(...)` and `.client(...)` change it through its management commands, as
its operator would."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sso import discovery

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "modelvault"
CLIENT_SECRET = "client-secret-of-the-tests"
PROVIDER_NAME = "Test IdP"


@dataclass
class Provider:
    url: str
    env: dict

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def client(self, redirect_uri: str) -> None:
        self.manage("provider_client", CLIENT_ID, CLIENT_SECRET, redirect_uri)

    def user(
        self, username: str, *, groups: list[str], email: str = "", unverified: bool = False
    ) -> None:
        args = ["provider_user", username, "--password", f"{username}-at-the-idp"]
        args += ["--email", email or f"{username}@example.com", "--groups", ",".join(groups)]
        self.manage(*args, *(["--unverified"] if unverified else []))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rsa_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oidc-provider")
    (folder / "rsa.pem").write_bytes(_rsa_key())
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.oidc_provider.settings",
        OIDC_PROVIDER_DIR=str(folder),
        PYTHONPATH=str(ROOT),
    )
    port = _free_port()
    provider = Provider(url=f"http://127.0.0.1:{port}", env=env)
    provider.manage("migrate", "--noinput")
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(
                    f"{provider.issuer}/.well-known/openid-configuration", timeout=2
                ).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the test OpenID provider did not start: {(folder / 'server.log').read_text()}"
                )
            time.sleep(0.2)
        yield provider
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture
def sso_settings(settings, oidc_provider):
    """Modelvault's settings for the test provider, by its issuer alone (the endpoints come
    from its discovery document), as docs/operations.md's example sets them."""
    settings.SSO_ENABLED = True
    settings.SSO_PROVIDER_NAME = PROVIDER_NAME
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_ISSUER = oidc_provider.issuer
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = discovery.discovered("authorization_endpoint")
    settings.OIDC_OP_TOKEN_ENDPOINT = discovery.discovered("token_endpoint")
    settings.OIDC_OP_USER_ENDPOINT = discovery.discovered("userinfo_endpoint")
    settings.OIDC_OP_JWKS_ENDPOINT = discovery.discovered("jwks_uri")
    discovery.forget()
    yield settings
    discovery.forget()
