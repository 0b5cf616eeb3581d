"""Post-market monitoring in a real browser (SPEC 3.10): a viewer flags a version; the flag
shows on the version page, on the catalog tile and in the technical documentation; a writer
resolves it."""

import pytest
from playwright.sync_api import expect

from registry.models import Flag
from registry.services.versions import version_create
from tests.e2e.pages import login

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = "Approval rate fell from 71% to 12% overnight"
PAYLOAD = '<img src="x" onerror="window.pwned = 1"> seen on **shadow traffic**'


@pytest.fixture
def flagged_version(model, alice):
    return version_create(actor=alice, model=model, metrics={"auc": 0.91})


def test_it_lets_a_viewer_flag_a_version_and_shows_it_everywhere(
    browser, live_server, cast, model, flagged_version
):
    version_url = f"{live_server.url}/orgs/acme/models/fraud/versions/{flagged_version.number}/"
    carol = login(browser, live_server, "carol")
    try:
        carol.goto(version_url)
        assert carol.locator("#open-flags-badge").count() == 0
        assert carol.locator(".resolve-flag").count() == 0  # carol views only
        carol.click("#flags .raise-flag summary")
        carol.select_option("#flag-severity", "high")
        carol.fill("#flag-summary", SUMMARY)
        carol.fill("#flag-details", PAYLOAD)
        carol.click("#raise-flag-form button[type=submit]")
        expect(carol.locator(".messages")).to_contain_text("raised")
        badge = carol.locator("#open-flags-badge")
        assert badge.inner_text() == "1 open flag"
        assert badge.get_attribute("data-open-flags") == "1"
        assert SUMMARY in carol.locator("#flags .open-flag").inner_text()
        assert "shadow traffic" in carol.locator("#flags .flag-details").inner_text()
        assert carol.evaluate("window.pwned") is None

        # The catalog tile counts the open flag.
        carol.goto(f"{live_server.url}/orgs/acme/models/")
        tile = carol.locator(".tile", has_text="fraud")
        assert tile.locator(".badge.flag").inner_text() == "1 open flag"

        # The technical documentation lists it among the open flags.
        carol.goto(version_url)
        carol.click("a:has-text('Technical documentation')")
        carol.wait_for_url(f"{version_url}documentation/")
        assert "Technical documentation" in carol.locator("h1").inner_text()
        assert SUMMARY in carol.locator("section#flags").inner_text()
    finally:
        carol.context.close()

    flag = Flag.objects.get(version=flagged_version)
    assert (flag.raised_by.username, flag.severity, flag.is_open) == ("carol", "high", True)

    # alice (write) resolves it; the badges go.
    alice = login(browser, live_server, "alice")
    try:
        alice.goto(version_url)
        alice.fill(f"#resolution-{flag.pk}", "Upstream feature pipeline fixed.")
        alice.click(f"#flag-{flag.pk} .resolve-flag button[type=submit]")
        expect(alice.locator(".messages")).to_contain_text("resolved")
        assert alice.locator("#open-flags-badge").count() == 0
        assert alice.locator("#no-open-flags").count() == 1
        alice.goto(f"{live_server.url}/orgs/acme/models/")
        assert alice.locator(".tile .badge.flag").count() == 0
    finally:
        alice.context.close()
    flag.refresh_from_db()
    assert (flag.resolved_by.username, flag.is_open) == ("alice", False)
