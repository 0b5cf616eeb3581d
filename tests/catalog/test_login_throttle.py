"""Login throttling (SPEC 4.6, django-axes): failures lock the username and the address out
of the login page and the admin console alike, until the cool-off has passed."""

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.db.models import F, Sum
from django.test import Client

from registry.demo import demo_password

LOGIN_PAGES = ["/login/", "/admin/login/"]
HERE, ELSEWHERE, FAR = "10.1.1.1", "10.2.2.2", "10.3.3.3"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def log_in(page: str, username: str, password: str, address: str):
    """One login attempt from `address`, through a client of its own (no session shared)."""
    return Client().post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def locked_out(response) -> bool:
    return response.status_code == 429 and b"Too many failed logins" in response.content


def pass_cool_off() -> None:
    """As if the cool-off had passed: every recorded failure moves that far into the past."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))


def failures(**match) -> int:
    return AccessAttempt.objects.filter(**match).aggregate(n=Sum("failures_since_start"))["n"] or 0


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_logs_in_below_the_limit(cast, page):
    for _ in range(4):
        assert log_in(page, "admin", "wrong", HERE).status_code == 200

    assert logged_in(log_in(page, "admin", demo_password("admin"), HERE))


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_locks_the_account_and_the_address_after_a_hundred_wrong_passwords(cast, root, page):
    # admin, and root as the other user: staff, whom the admin console would let in.
    other = ("root", "root-demo") if page == "/admin/login/" else ("bob", demo_password("bob"))
    answers = [log_in(page, "admin", f"guess-{i}", HERE) for i in range(100)]

    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert all(locked_out(a) for a in answers[4:])
    # Refused attempts are not counted: the lockout runs from the fifth failure.
    assert failures(username="admin") == 5
    # The right password is refused: from the same address, and for the account from any.
    assert locked_out(log_in(page, "admin", demo_password("admin"), HERE))
    assert locked_out(log_in(page, "admin", demo_password("admin"), FAR))
    # The address is locked for everybody; other users elsewhere are unaffected.
    assert locked_out(log_in(page, *other, HERE))
    assert logged_in(log_in(page, *other, FAR))
    # Until the lockout ends.
    pass_cool_off()
    assert logged_in(log_in(page, "admin", demo_password("admin"), HERE))


def test_it_locks_an_account_tried_from_many_addresses(cast):
    for i in range(5):
        log_in("/login/", "alice", "wrong", f"10.9.0.{i}")

    assert locked_out(log_in("/login/", "alice", demo_password("alice"), FAR))
    assert locked_out(log_in("/admin/login/", "alice", demo_password("alice"), ELSEWHERE))
    assert logged_in(log_in("/login/", "bob", demo_password("bob"), FAR))


def test_it_locks_an_address_that_tries_many_accounts(cast):
    for username in ["admin", "alice", "bob", "carol", "nobody"]:
        log_in("/login/", username, "wrong", HERE)

    assert locked_out(log_in("/login/", "mallory", demo_password("mallory"), HERE))
    assert logged_in(log_in("/login/", "mallory", demo_password("mallory"), ELSEWHERE))


def test_it_counts_the_login_page_and_the_admin_console_together(cast):
    for page in ["/login/", "/admin/login/"] * 2 + ["/login/"]:
        log_in(page, "admin", "wrong", HERE)

    assert locked_out(log_in("/admin/login/", "admin", demo_password("admin"), ELSEWHERE))
    assert locked_out(log_in("/login/", "admin", demo_password("admin"), ELSEWHERE))


def test_it_shows_the_lockout_page_with_retry_after(cast):
    for _ in range(5):
        log_in("/login/", "alice", "wrong", HERE)

    response = log_in("/login/", "alice", demo_password("alice"), HERE)

    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Too many failed logins" in page and "Try again in 15 minutes" in page
    assert 'href="/login/"' in page
    assert "Content-Security-Policy" in response


def test_it_keeps_a_locked_out_session_logged_out(cast):
    client = Client()
    for _ in range(5):
        client.post("/login/", {"username": "alice", "password": "x"}, REMOTE_ADDR=HERE)

    client.post(
        "/login/", {"username": "alice", "password": demo_password("alice")}, REMOTE_ADDR=HERE
    )

    assert client.get("/", REMOTE_ADDR=HERE).status_code == 302  # to the login page


def test_it_logs_each_lockout_and_records_it_for_the_admin_console(cast, root_client, caplog):
    caplog.set_level(logging.WARNING, logger="modelvault.security")
    for _ in range(5):
        log_in("/login/", "carol", "wrong", HERE)
    log_in("/login/", "carol", demo_password("carol"), HERE)

    lines = [r.getMessage() for r in caplog.records if r.name == "modelvault.security"]
    assert lines == ["login locked out: username='carol' address=10.1.1.1 path=/login/"] * 2
    assert AccessFailureLog.objects.filter(username="carol", ip_address=HERE).count() == 5
    assert AccessFailureLog.objects.filter(username="carol", locked_out=True).count() == 1
    # Superusers read the attempts in the admin console; org admins do not (they are global).
    listing = root_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "carol" in listing.content.decode()
    assert root_client.get("/admin/axes/accessfailurelog/").status_code == 200
    org_admin = Client()
    org_admin.force_login(cast.admin)
    assert org_admin.get("/admin/axes/accessattempt/").status_code == 403


def test_it_counts_the_client_behind_a_trusted_proxy(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.1"

    def via_proxy(username: str, password: str, forwarded: str):
        return Client().post(
            "/login/",
            {"username": username, "password": password},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    for i in range(5):
        # A client's own X-Forwarded-For entries come first and change nothing.
        via_proxy("nobody", "wrong", f"6.6.6.{i}, {HERE}")

    assert locked_out(via_proxy("alice", demo_password("alice"), HERE))
    assert logged_in(via_proxy("alice", demo_password("alice"), ELSEWHERE))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HERE}


# Bursts: parallel logins, each a thread with its own PostgreSQL connection, counted by
# axes under a row lock (AccessAttempt.select_for_update()).
RACERS, EACH = 25, 4


def burst(username: str, password: str, address: str) -> list:
    from tests.registry.test_concurrency_postgres import Race

    def attempts(i: int) -> list[int]:
        return [log_in("/login/", username, password, address).status_code for _ in range(EACH)]

    race = Race(RACERS, attempts)
    answers = [status for statuses in race.run() for status in statuses]
    assert race.peak > 1, "the logins never overlapped: this run proved nothing"
    return answers


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_counts_each_failure_of_a_parallel_burst_once(cast, settings):
    settings.AXES_FAILURE_LIMIT = 1000

    answers = burst("alice", "wrong", HERE)

    assert answers == [200] * RACERS * EACH
    assert AccessAttempt.objects.filter(username="alice").count() == 1
    assert failures(username="alice", ip_address=HERE) == RACERS * EACH
    assert AccessFailureLog.objects.filter(username="alice").count() == RACERS * EACH


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_locks_out_after_a_parallel_burst_of_a_hundred_wrong_passwords(cast):
    answers = burst("alice", "wrong", HERE)

    # Every attempt is refused. The attempts checked before the fifth failure was counted
    # are counted (at most one more per racer in flight than the limit), each once: at most
    # four of them see a count below five and answer "wrong password", the rest the lockout.
    assert set(answers) <= {200, 429}
    assert answers.count(200) <= 4
    assert 5 <= failures(username="alice") <= 4 + RACERS
    assert AccessFailureLog.objects.filter(username="alice").count() == failures(username="alice")
    assert locked_out(log_in("/login/", "alice", demo_password("alice"), HERE))
    assert locked_out(log_in("/login/", "alice", demo_password("alice"), FAR))
    assert locked_out(log_in("/login/", "bob", demo_password("bob"), HERE))
    assert logged_in(log_in("/login/", "bob", demo_password("bob"), FAR))
    pass_cool_off()
    assert logged_in(log_in("/login/", "alice", demo_password("alice"), HERE))
