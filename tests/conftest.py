"""The fixed cast of SPEC 4.4 (the same as seed_demo's), and the service switches.

REQUIRE_SERVICES=1 / REQUIRE_BROWSER=1 (CI sets both) turn a skip for a missing service
into a failure.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import transaction
from django.test import Client

from registry.demo import Cast, ensure_cast, ensure_shared_model

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
MODEL_DESCRIPTION = "Card fraud scoring"


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
    # Before the cast is made (_cast_held below): a fast hasher, for the tests only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Each test process counts failed API tokens in its own memory, never in a Redis that
    # the xdist workers would share; _test_settings empties it before each test.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # A database connection is closed when its request ends (DATABASE_CONN_MAX_AGE=0): a live
    # server's request thread would otherwise keep its own open for as long as its client
    # keeps the HTTP connection alive, and PostgreSQL's test database could not be dropped
    # at the end of the run. (The servers and Celery workers that tests start are processes
    # of their own, with the deployed default.)
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


def is_transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(item.fixturenames)
    )


def is_db(item) -> bool:
    return bool(item.get_closest_marker("django_db")) or "db" in item.fixturenames


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    """Before the other plugins: the tests that share a machine-wide resource go to one
    xdist worker (under make test's `--dist loadgroup`), one after the other: the browser
    tests (one Chromium, one live server) and those with a real Celery worker on the shared
    Redis databases.

    After them, the order (pytest-django's, changed): the browser and services groups first,
    so that their worker starts on them while the others share out the rest (another group,
    such as the MLflow importer's, only keeps its tests on one worker); then the tests without the
    database; then those in a transaction: without the cast, with the cast, with the shared
    model; the transactional ones last. The cast and the model are made once, when the
    first test needs them (below), and no test that expects them absent runs after."""
    for item in items:
        if "browser" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.get_closest_marker("services"):
            item.add_marker(pytest.mark.xdist_group("services"))
    yield

    def order(item) -> int:
        group = item.get_closest_marker("xdist_group")
        if group is not None and group.args[0] in ("browser", "services"):
            return 0  # a group of its own kind (e.g. mlflow_server's) sorts as its tests do
        if is_transactional(item):
            return 5
        if not is_db(item):
            return 1
        return 4 if "model" in item.fixturenames else 3 if "cast" in item.fixturenames else 2

    items.sort(key=order)


# The transaction that holds the cast for the tests in a transaction (as Django's
# TestCase.setUpTestData holds a class's data): each test runs in a savepoint inside it.
held = {"atomic": None, "model": False, "blocker": None}


def hold(*, model: bool) -> None:
    held["atomic"] = transaction.atomic()
    held["atomic"].__enter__()
    cast = ensure_cast(passwords=True)
    if model:
        ensure_shared_model(cast, "fraud", description=MODEL_DESCRIPTION)
    held["model"] = model


def roll_back_held() -> None:
    if held["atomic"] is not None:
        transaction.set_rollback(True)
        held["atomic"].__exit__(None, None, None)
        held["atomic"] = None


@pytest.fixture(scope="session")
def _cast_held(django_db_setup, django_db_blocker):
    """The cast, made once per test database (one per xdist worker) in a transaction that
    is never committed: a test starts from it and rolls back to it, instead of making the
    cast anew, and its after-commit hooks are dropped as a test's own would be."""
    held["blocker"] = django_db_blocker
    with django_db_blocker.unblock():
        hold(model=False)
    yield
    with django_db_blocker.unblock():
        roll_back_held()


@pytest.fixture(scope="session")
def _model_held(_cast_held, django_db_blocker) -> None:
    if held["atomic"] is not None:
        with django_db_blocker.unblock():
            ensure_shared_model(ensure_cast(), "fraud", description=MODEL_DESCRIPTION)
        held["model"] = True


@contextmanager
def triggers_lifted() -> Iterator[None]:
    """The database without its triggers (registry/migrations/0008), as whoever owns it
    could make it: for tests that tamper as such an attacker would."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            triggers = cursor.fetchall()
            for name, _, _ in triggers:
                cursor.execute(f'DROP TRIGGER "{name}"')
        else:
            # Fires no trigger but the internal ones, for this session (a superuser's power).
            cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                # Only those missing, on tables still there: a rollback meanwhile may have
                # restored them, the end of the session dropped the test database.
                cursor.execute("SELECT type, name FROM sqlite_master")
                present = set(cursor.fetchall())
                for name, table, sql in triggers:
                    if ("table", table) in present and ("trigger", name) not in present:
                        cursor.execute(sql)
            else:
                cursor.execute("SET session_replication_role = DEFAULT")


@contextmanager
def _flush_past_triggers(item) -> Iterator[None]:
    """Django empties the database after a transactional test with DELETE on SQLite, which
    the triggers refuse for events and closed versions (PostgreSQL's TRUNCATE fires none)."""
    from django.db import connection

    blocker = getattr(item, "funcargs", {}).get("django_db_blocker")
    if blocker is None or not is_transactional(item) or connection.vendor != "sqlite":
        yield
        return
    with blocker.unblock(), triggers_lifted():
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    if held["atomic"] is not None and is_transactional(item):
        # A transactional test stopped by a fixture (a skip, an error) before
        # _transactional_starts_empty, after its session fixtures had held the cast: its
        # teardown empties the database and makes the content types anew, which must not
        # happen inside the held transaction. The tests after it would cache those content
        # types, and the next transactional test, the cast rolled back, would find a
        # model's permissions under ids that are gone.
        with held["blocker"].unblock():
            roll_back_held()
    with _flush_past_triggers(item):
        result = yield
    if held["atomic"] is not None and transaction.get_rollback():
        # The test ended the held transaction: on PostgreSQL, a response it closed itself
        # (not through the test client) ran Django's close_old_connections, which closes a
        # connection inside a transaction. Hold the cast again for the tests after it.
        with held["blocker"].unblock():
            roll_back_held()
            hold(model=held["model"])
    return result


@pytest.fixture(autouse=True)
def _transactional_starts_empty(request, django_db_blocker) -> None:
    """Transactional tests (ordered after the others) commit, and need an empty database
    without a transaction around them: the held one is rolled back before the first."""
    if held["atomic"] is not None and is_transactional(request.node):
        with django_db_blocker.unblock():
            roll_back_held()


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # Speed-ups and isolation that belong to the tests only.
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
    cache.clear()  # no test inherits another's failed-token counts (api/throttle.py)


@pytest.fixture
def cast(_cast_held, db) -> Cast:
    # Finds the held cast; in a transactional test, makes it.
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
def model(_model_held, cast):
    """acme/fraud: admin owns it; alice may write and approve, bob approve, carol view."""
    model = ensure_shared_model(cast, "fraud", description=MODEL_DESCRIPTION)
    # As when made in the test: the model holds the cast's instances, not fresh copies.
    model.org, model.owner, model.created_by = cast.acme, cast.admin, cast.admin
    return model


@pytest.fixture
def exp(model, alice):
    """An experimental branch of acme/fraud: unprotected, so its versions stay out of
    production until promoted to main."""
    from registry.services.branches import branch_create

    return branch_create(actor=alice, model=model, name="exp")


def messages_of(response) -> list[str]:
    """The messages a response's request left for the next page (post/redirect/get)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """`postgres` tests need PostgreSQL (real parallel connections, or its own SQL);
    `services` tests also start a Celery worker, a process that must reach the test
    database. The SQLite pass of CI deselects both, the PostgreSQL pass runs them. Decided
    before any fixture is set up: a test that cannot run sets nothing up (nor empties the
    database after it)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    if item.get_closest_marker("services"):
        missing_service(
            "needs PostgreSQL, which its Celery worker shares with the test "
            "(DATABASE_URL=postgres://...), and Redis (CELERY_BROKER_URL=redis://...): "
            "make test-postgres"
        )
    if item.get_closest_marker("postgres"):
        missing_service("needs PostgreSQL (DATABASE_URL=postgres://...): make test-postgres")


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
