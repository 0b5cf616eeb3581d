"""The web UI's answers to a form too large (413 page) and to a busy database (503 page
with Retry-After), never Django's generic 400 or 500. The lock is forced as in
tests/api/test_too_large_and_busy.py."""

import pytest
from django.test import Client

from config.database import RETRY_AFTER
from registry.models import ActivityEvent, Comment
from tests.api.test_too_large_and_busy import THREE_MB, database_fails_writes

COMMENTS = "/orgs/acme/models/fraud/versions/1/comments/"


@pytest.fixture
def alice_browser(alice) -> Client:
    """alice in a browser: CSRF checked, the CSRF cookie set by a page she opened."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(alice)
    client.get("/")
    return client


def test_it_answers_the_413_page_to_a_form_over_the_limit(alice_browser, version):
    response = alice_browser.post(
        COMMENTS,
        data="body=" + "x" * THREE_MB,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413
    assert [t.name for t in response.templates][0] == "413.html"
    page = response.content.decode()
    assert "Too large" in page
    assert "larger than the 2.5\xa0MB a form's text" in page
    assert not Comment.objects.exists()


def test_it_answers_the_503_page_with_retry_after_when_the_database_is_locked(
    alice_browser, version
):
    events = ActivityEvent.objects.count()
    token = alice_browser.cookies["csrftoken"].value

    with database_fails_writes("database is locked"):
        response = alice_browser.post(COMMENTS, {"body": "lgtm", "csrfmiddlewaretoken": token})

    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert [t.name for t in response.templates][0] == "503.html"
    page = response.content.decode()
    assert "The database is busy with other changes." in page
    assert f"Try again in {RETRY_AFTER} seconds." in page
    assert ActivityEvent.objects.count() == events
    assert not Comment.objects.exists()


def test_it_leaves_other_database_failures_the_500_page(alice_browser, version):
    token = alice_browser.cookies["csrftoken"].value

    with database_fails_writes("disk I/O error"):
        response = alice_browser.post(COMMENTS, {"body": "lgtm", "csrfmiddlewaretoken": token})

    assert response.status_code == 500
    assert "Retry-After" not in response
