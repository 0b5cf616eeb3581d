"""The review journey in a real browser (issue 4 acceptance), taking the README screenshots:
under var/screenshots, or in SCREENSHOTS_DIR (`make screenshots` renews docs/screenshots)."""

import io
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from registry.services.versions import version_create, version_set_lock_level
from tests.e2e.pages import login, violations

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")
PAYLOAD = (
    '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 1"> '
    "Gradient-boosted trees, **AUC 0.91**."
)


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


@pytest.fixture
def journey_version(model, alice):
    version_create(actor=alice, model=model, metrics={"auc": 0.87}, params={"max_depth": 6})
    return version_create(
        actor=alice,
        model=model,
        description=PAYLOAD,
        params={"max_depth": 8, "learning_rate": 0.05},
        metrics={"auc": 0.91, "precision": 0.88},
        environment={"python_version": "3.11", "requirements": "scikit-learn==1.5.2\n"},
        datasets=[{"name": "transactions", "uri": "s3://data/tx/2026-10", "version": "42"}],
        code_version={"repo": "git@example.com:ml/fraud.git", "commit": "9f2c1e7"},
        artifacts={"model.pkl": io.BytesIO(b"not really a pickle")},
    )


def test_it_takes_a_request_through_review(browser, live_server, cast, model, journey_version):
    version_url = f"{live_server.url}/orgs/acme/models/fraud/versions/{journey_version.number}/"
    alice = login(browser, live_server, "alice")
    try:
        shoot(alice, "home.png")
        alice.goto(f"{live_server.url}/orgs/acme/models/")
        assert "fraud" in alice.locator(".tiles").inner_text()
        shoot(alice, "catalog.png")
        # 1. alice requests Staging with a comment through the stage selector.
        alice.goto(version_url)
        assert alice.evaluate("window.pwned") is None
        alice.click(".stage-selector summary")
        alice.click(".stage-selector a:has-text('Staging')")
        assert "skips a step" in alice.locator("#stage-request .warning").inner_text()
        alice.fill("#request-comment", "Ready for **shadow traffic** tests.")
        alice.click("#stage-request button[type=submit]")
        expect(alice.locator(".messages")).to_contain_text("Requested Staging")
        assert "Pending request" in alice.locator(".pending-banner").inner_text()
        # 7. a payload in a comment does not execute either.
        alice.fill("#comment-body", PAYLOAD)
        alice.click("#comments button[type=submit]")
        expect(alice.locator(".comment-body")).to_contain_text("AUC 0.91")
        assert alice.evaluate("window.pwned") is None
        shoot(alice, "version.png")
        # Nothing on the way was refused by the Content-Security-Policy.
        assert violations(alice) == []
    finally:
        alice.context.close()

    # 2. bob approves from the version page, with a comment.
    bob = login(browser, live_server, "bob")
    try:
        bob.goto(f"{live_server.url}/approvals/")
        assert "fraud v" in bob.locator("table").inner_text()
        shoot(bob, "approvals.png")
        bob.goto(version_url)
        bob.fill("#approve-comment", "Metrics hold up, approved.")
        bob.click("button.approve")
        # 3. the stage badge changes; the activity tab shows both steps with their comments.
        expect(bob.locator("#stage-badge")).to_have_text("Staging")
        assert bob.evaluate("window.pwned") is None
        bob.goto(f"{live_server.url}/orgs/acme/models/fraud/?tab=activity")
        activity = bob.locator("table.events").inner_text()
        # The comment as Markdown renders it, not its source.
        assert "stage.requested" in activity and "Ready for shadow traffic tests." in activity
        expect(bob.locator("table.events strong", has_text="shadow traffic").first).to_be_visible()
        assert "stage.approved" in activity and "Metrics hold up, approved." in activity
        bob.goto(f"{live_server.url}/orgs/acme/models/fraud/")
        shoot(bob, "model-card.png")
        bob.goto(f"{live_server.url}/orgs/acme/models/fraud/compare/?a=1&b=2")
        assert bob.locator("table.compare tr.diff").count() >= 1
        shoot(bob, "compare.png")
        assert violations(bob) == []
    finally:
        bob.context.close()


def test_it_shows_each_role_only_its_controls(
    browser, live_server, cast, model, journey_version, alice
):
    version_url = f"{live_server.url}/orgs/acme/models/fraud/versions/{journey_version.number}/"
    # 4. carol sees no stage selector and no lock control.
    carol = login(browser, live_server, "carol")
    try:
        carol.goto(version_url)
        assert carol.locator("h1").inner_text().startswith("Version")
        assert carol.locator(".stage-selector").count() == 0
        assert carol.locator(".lock-control").count() == 0
    finally:
        carol.context.close()
    # 5. mallory gets a 404 on alice's model.
    mallory = login(browser, live_server, "mallory")
    try:
        response = mallory.goto(f"{live_server.url}/orgs/acme/models/fraud/")
        assert response.status == 404
        assert mallory.goto(version_url).status == 404
    finally:
        mallory.context.close()
    # 6. a closed version shows no control that edits an ingredient.
    version_set_lock_level(actor=alice, version=journey_version, level="closed")
    page = login(browser, live_server, "alice")
    try:
        page.goto(version_url)
        assert page.locator(".lock-control").count() == 0
        actions = page.eval_on_selector_all("form", "forms => forms.map(f => f.action)")
        # Aliases point at a version whatever its lock level: they are no ingredient.
        assert all(
            a.endswith(("/comments/", "/metadata/", "/logout/", "/flags/", "/aliases/"))
            for a in actions
        ), actions
        # Free metadata stays editable at every level (SPEC 3.2); no ingredient field is offered.
        fields = page.eval_on_selector_all(
            "form[action$='/metadata/'] [name]", "fields => fields.map(f => f.name)"
        )
        assert {f for f in fields if not f.startswith("tags-")} == {
            "csrfmiddlewaretoken",
            "description",
            "readme",
        }
        assert "tags-0-key" in fields
        assert "Nobody may change its ingredients" in page.content()
        assert violations(page) == []
    finally:
        page.context.close()
