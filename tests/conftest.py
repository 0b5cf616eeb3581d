"""The fixed cast of SPEC 4.4 (the same as seed_demo's), and the service switches.

REQUIRE_SERVICES=1 / REQUIRE_BROWSER=1 (CI sets both) turn a skip for a missing service
into a failure.
"""

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from registry.demo import Cast, ensure_cast, ensure_shared_model

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"


def missing_service(reason: str) -> None:
    """Skip with `reason`, or fail when the run requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No browser download ever: Debian's Chromium, with its network chatter switched off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright; skips without it unless REQUIRE_BROWSER=1."""
    if not os.path.exists(CHROMIUM):
        reason = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # are still synchronous, so Django's async guard is told so.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def pytest_configure(config):
    from django.conf import settings

    # Before any server starts (the live server builds its middleware once per session):
    # test clients and the browser speak plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    settings.SECURE_HSTS_SECONDS = 0


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # Speed-ups and isolation that belong to the tests only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_TMP_DIR = tmp_path / "artifacts-tmp"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "artifacts"},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core.files.storage import storages

    storages._storages = {}  # the artifact storage is built anew from the settings above
    yield
    storages._storages = {}


@pytest.fixture
def cast(db) -> Cast:
    return ensure_cast(passwords=True)


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "root-demo")


@pytest.fixture
def acme(cast):
    return cast.acme


@pytest.fixture
def globex(cast):
    return cast.globex


@pytest.fixture
def admin(cast):
    return cast.admin


@pytest.fixture
def alice(cast):
    return cast.alice


@pytest.fixture
def bob(cast):
    return cast.bob


@pytest.fixture
def carol(cast):
    return cast.carol


@pytest.fixture
def mallory(cast):
    return cast.mallory


@pytest.fixture
def model(cast):
    """acme/fraud: admin owns it; alice may write and approve, bob approve, carol view."""
    return ensure_shared_model(cast, "fraud", description="Card fraud scoring")


@pytest.fixture
def exp(model, alice):
    """An experimental branch of acme/fraud: unprotected, so its versions stay out of
    production until promoted to main."""
    from registry.services.branches import branch_create

    return branch_create(actor=alice, model=model, name="exp")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# These replace pytest-django's admin_user/admin_client, which would make a superuser
# called "admin": here "admin" is the cast's org admin, and `root` is the superuser.
@pytest.fixture
def admin_user(cast):
    return cast.admin


@pytest.fixture
def admin_client(cast) -> Client:
    return logged_in(cast.admin)


@pytest.fixture
def alice_client(cast) -> Client:
    return logged_in(cast.alice)


@pytest.fixture
def bob_client(cast) -> Client:
    return logged_in(cast.bob)


@pytest.fixture
def carol_client(cast) -> Client:
    return logged_in(cast.carol)


@pytest.fixture
def mallory_client(cast) -> Client:
    return logged_in(cast.mallory)


@pytest.fixture
def root_client(root) -> Client:
    return logged_in(root)


@pytest.fixture(autouse=True)
def _service_markers(request):
    """`postgres` tests need PostgreSQL (real parallel connections); the SQLite pass of CI
    deselects them, the PostgreSQL pass runs them."""
    if request.node.get_closest_marker("postgres") or request.node.get_closest_marker("services"):
        from django.db import connection

        if connection.vendor != "postgresql":
            missing_service(
                "needs PostgreSQL with parallel connections: DATABASE_URL=postgres://... "
                "(make test-postgres)"
            )


@pytest.fixture
def blob_open():
    """`blob_open(sha256)`: whether this process holds the stored blob's file open."""

    def check(sha256: str) -> bool:
        from registry import storage

        path = os.path.realpath(storage.artifact_storage().path(storage.blob_key(sha256)))
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # closed meanwhile
                continue
        return path in links

    return check
