"""The new UI walked in Chromium, with JavaScript and without (issue 20): a member registers a
model and a version with its files and lock level, a default reviewer approves its stage
request, tags are edited, an alias is set and, once protected, moved through a request an
admin approves; then the fixed items of the UI walk. Screenshots of the new pages go to
var/screenshots, or SCREENSHOTS_DIR (`make screenshots` renews docs/screenshots).

This module is also the URLconf of the 500 check: the product's own, plus one failing view."""

import os
import re
from pathlib import Path

import pytest
from django.urls import path
from playwright.sync_api import expect

from approvals.services import request_approve, request_create
from config import urls as product_urls
from registry.demo import demo_password
from registry.models import ApiToken, Flag, ModelVersion
from registry.services.aliases import alias_protect
from registry.services.branches import branch_create
from registry.services.comments import comment_add
from registry.services.flags import flag_raise
from registry.services.orgs import team_create, team_set_members
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.e2e.pages import new_context, violations

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")
FILES = [
    {"name": "model.onnx", "mimeType": "application/octet-stream", "buffer": b"\x08\x07onnx" * 64},
    {"name": "labels.json", "mimeType": "application/json", "buffer": b'["stay", "leave"]'},
]
BRIGHT_GREEN = "rgb(0, 200, 83)"  # --production, #00c853


def fail(request):
    raise RuntimeError("a failure on purpose: the journey's 500")


urlpatterns = [path("journey/failure/", fail), *product_urls.urlpatterns]
handler400 = product_urls.handler400
handler500 = product_urls.handler500


def shoot(page, name: str, js: bool) -> None:
    """The README's pictures come from the run with JavaScript, as most people see it."""
    if js:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def sign_in(browser, live_server, username: str, js: bool):
    page = new_context(browser, java_script_enabled=js).new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", demo_password(username))
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted([luminance(a), luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def style(locator, prop: str) -> str:
    return locator.evaluate(f"(e) => getComputedStyle(e).{prop}")


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def js(request) -> bool:
    return request.param


@pytest.fixture
def reviewers(cast):
    team = team_create(actor=cast.admin, org=cast.acme, name="reviewers")
    return team_set_members(actor=cast.admin, team=team, users=[cast.bob])


def test_it_registers_reviews_and_aliases_a_new_model(browser, live_server, cast, reviewers, js):
    base = live_server.url
    # An org admin names the default reviewers on the org's settings page.
    admin = sign_in(browser, live_server, "admin", js)
    try:
        admin.goto(f"{base}/orgs/acme/settings/")
        admin.select_option("#id_default_reviewers", label="reviewers")
        admin.click("button:has-text('Save settings')")
        expect(admin.locator(".messages")).to_contain_text("saved")
        assert admin.locator("#id_default_reviewers option:checked").inner_text() == "reviewers"
        shoot(admin, "org-settings.png", js)
    finally:
        admin.context.close()

    # alice, a member, registers a model and a version with two files at lock level redact.
    alice = sign_in(browser, live_server, "alice", js)
    try:
        alice.goto(f"{base}/orgs/acme/models/")
        alice.click("a:has-text('New model')")
        alice.fill("#id_name", "churn")
        alice.fill("#id_description", "Who leaves, and when")
        alice.fill("#id_tags-0-key", "team")
        alice.fill("#id_tags-0-value", "growth")
        shoot(alice, "new-model.png", js)
        alice.click("#model-form button:has-text('Register the model')")
        expect(alice.locator(".messages")).to_contain_text("Model churn registered.")

        alice.click("a:has-text('Register a version')")
        alice.wait_for_url(f"{base}/orgs/acme/models/churn/versions/new/")
        alice.fill("#id_label", "1.0.0")
        alice.fill("#id_metrics-0-key", "auc")
        alice.fill("#id_metrics-0-value", "0.81")
        alice.select_option("#id_lock_level", "redact")
        alice.set_input_files("#id_files", FILES)
        shoot(alice, "new-version.png", js)
        alice.click("#version-form button:has-text('Register the version')")
        alice.wait_for_url(f"{base}/orgs/acme/models/churn/versions/1/")
        expect(alice.locator(".messages")).to_contain_text("Version 1 registered.")
        assert "redact" in alice.locator(".page-head .badges").inner_text().lower()
        artifacts = alice.locator("section[aria-labelledby=artifacts-heading]").inner_text()
        assert "model.onnx" in artifacts and "labels.json" in artifacts

        # Her request for Staging names bob, a default reviewer, as who will be asked.
        alice.click(".stage-selector summary")
        alice.click(".stage-selector a:has-text('Staging')")
        expect(alice.locator("#request-reviewers")).to_contain_text("bob")
        alice.fill("#request-comment", "First churn model, **AUC 0.81**.")
        alice.click("#stage-request button[type=submit]")
        expect(alice.locator(".messages")).to_contain_text("Requested Staging")
    finally:
        alice.context.close()

    # bob approves it from his queue.
    bob = sign_in(browser, live_server, "bob", js)
    try:
        bob.goto(f"{base}/approvals/")
        row = bob.locator("tr", has_text="churn v1")
        row.locator("input[name=comment]").fill("Good start.")
        row.locator("button.approve").click()
        expect(bob.locator(".messages")).to_contain_text("approved")
        bob.goto(f"{base}/orgs/acme/models/churn/versions/1/")
        expect(bob.locator("#stage-badge")).to_have_text("Staging")
    finally:
        bob.context.close()

    # alice edits the model's tags and points an alias at version 1.
    alice = sign_in(browser, live_server, "alice", js)
    try:
        alice.goto(f"{base}/orgs/acme/models/churn/")
        alice.click("#edit-model summary")
        alice.fill("#edit-model [name=tags-0-value]", "retention")
        alice.fill("#edit-model [name=tags-1-key]", "task")
        alice.fill("#edit-model [name=tags-1-value]", "classification")
        alice.click("#edit-model button[type=submit]")
        expect(alice.locator(".page-head .tags")).to_contain_text("team: retention")
        expect(alice.locator(".page-head .tags")).to_contain_text("task: classification")

        alice.goto(f"{base}/orgs/acme/models/churn/versions/1/")
        alice.fill("#alias-name", "candidate")
        alice.click("#alias-set-form button[type=submit]")
        expect(alice.locator(".messages")).to_contain_text("@candidate points at version 1.")
    finally:
        alice.context.close()

    # The admin protects the alias (no page for that yet); alice registers version 2.
    model = ModelVersion.objects.get(model__name="churn", number=1).model
    alias_protect(actor=cast.admin, model=model, name="candidate")
    version_create(actor=cast.alice, model=model, metrics={"auc": 0.84})

    alice = sign_in(browser, live_server, "alice", js)
    try:
        alice.goto(f"{base}/orgs/acme/models/churn/versions/2/")
        row = alice.locator("table.aliases tr", has_text="@candidate")
        assert row.get_by_role("button", name="Move here", exact=True).count() == 0  # protected
        row.locator("input[name=comment]").fill("v2 beats v1 on AUC.")
        row.locator("button:has-text('Request move here')").click()
        expect(alice.locator(".messages")).to_contain_text(
            "Requested pointing @candidate at version 2"
        )
        expect(alice.locator("#aliases .pending-banner")).to_contain_text("point alias @candidate")
        shoot(alice, "version-aliases.png", js)

        alice.click("nav a:has-text('My requests')")
        alice.wait_for_url(f"{base}/approvals/mine/")
        rows = alice.locator("table tbody tr")
        expect(rows).to_have_count(2)
        assert "Pending" in rows.nth(0).inner_text() and "@candidate" in rows.nth(0).inner_text()
        assert "Approved" in rows.nth(1).inner_text() and "churn v1" in rows.nth(1).inner_text()
        shoot(alice, "my-requests.png", js)
        assert violations(alice) == []
    finally:
        alice.context.close()

    # The admin approves the move; the model card shows the tags and where the alias points.
    admin = sign_in(browser, live_server, "admin", js)
    try:
        admin.goto(f"{base}/orgs/acme/models/churn/versions/2/")
        admin.fill("#aliases .pending-banner textarea[name=comment]", "Agreed.")
        admin.click("#aliases .pending-banner button.approve")
        expect(admin.locator(".messages")).to_contain_text("approved")
        row = admin.locator("table.aliases tr", has_text="@candidate")
        expect(row).to_contain_text("this version")
        admin.goto(f"{base}/orgs/acme/models/churn/")
        expect(admin.locator("#model-aliases")).to_contain_text("@candidate")
        assert "v2" in admin.locator("#model-aliases").inner_text()
        shoot(admin, "model-card-aliases.png", js)
        assert violations(admin) == []
    finally:
        admin.context.close()


def move_to(version, stage: str, *, requester, reviewer) -> None:
    request = request_create(actor=requester, version=version, to_stage=stage)
    request_approve(actor=reviewer, request=request)


@pytest.fixture
def walk(cast, model):
    """acme/fraud with a version in production carrying an open flag, one in staging, one on
    an unprotected branch, and a comment in Markdown; and acme/churn, with none in production."""
    alice, bob = cast.alice, cast.bob
    v1 = version_create(actor=alice, model=model, metrics={"auc": 0.81, "f1": 0.62})
    v2 = version_create(actor=alice, model=model, metrics={"auc": 0.86, "f1": 0.66}, parents=[v1])
    move_to(v1, "production", requester=alice, reviewer=bob)
    move_to(v2, "staging", requester=alice, reviewer=bob)
    flag_raise(actor=cast.carol, version=v1, severity="high", summary="Drift on prepaid cards")
    branch_create(actor=alice, model=model, name="exp")
    version_create(actor=alice, model=model, branch="exp", metrics={"auc": 0.9}, parents=[v2])
    comment_add(actor=bob, model=model, version=v2, body="Holds up in **shadow traffic**.")
    churn = model_create(actor=alice, org=cast.acme, name="churn")
    version_create(actor=alice, model=churn)
    return model


def test_it_walks_the_fixed_items(browser, live_server, cast, walk, settings, js):
    base = live_server.url
    fraud = f"{base}/orgs/acme/models/fraud"
    alice = sign_in(browser, live_server, "alice", js)
    try:
        # Reloading the API-tokens page after "Make token" makes no second token.
        alice.click("nav a:has-text('API tokens')")
        alice.fill("#id_name", "laptop")
        alice.click("button:has-text('Make token')")
        expect(alice.locator("#new-token")).to_be_visible()
        alice.reload()
        expect(alice.locator("table tbody tr")).to_have_count(1)
        assert alice.locator("#new-token").count() == 0  # shown once
        assert ApiToken.objects.filter(user=cast.alice).count() == 1

        # "Production 0" on a tile is not bright green; "Production 1" is.
        alice.goto(f"{base}/orgs/acme/models/")
        churn = alice.locator(".tile", has_text="churn").locator("li", has_text="Production")
        assert style(churn, "backgroundColor") != BRIGHT_GREEN
        fraud_tile = alice.locator(".tile", has_text="fraud")
        production = fraud_tile.locator("li", has_text="Production")
        assert style(production, "backgroundColor") == BRIGHT_GREEN
        # The open flag shows on the tile, the model card and compare.
        assert fraud_tile.locator(".badge.flag").inner_text() == "1 open flag"

        # The "In production" links on the model card are readable on the green (AA).
        alice.goto(f"{fraud}/")
        item = alice.locator("li.stage-production").first
        link = item.locator("a").first
        ratio = contrast(style(link, "color"), style(item, "backgroundColor"))
        assert ratio >= 4.5, ratio
        expect(alice.locator("#open-flags")).to_contain_text("Drift on prepaid cards")

        # Compare takes two to five versions; its charts show the values and a scale.
        alice.goto(f"{fraud}/compare/")
        alice.select_option("#compare-versions", ["1", "2", "3"])
        alice.click("button:has-text('Compare')")
        expect(alice.locator("#compare-legend")).to_contain_text("v3")
        assert alice.locator("#compare-legend .badge.flag").inner_text() == "1 open flag"
        auc = alice.locator("figure", has=alice.locator("figcaption", has_text="auc"))
        values = auc.locator("text.value").all_text_contents()
        assert sorted(values) == ["0.81", "0.86", "0.9"]
        title = auc.locator("svg > title").text_content()
        assert all(pair in title for pair in ("v1 0.81", "v2 0.86", "v3 0.9")), title
        assert len(auc.locator("text.tick").all_text_contents()) >= 2
        alice.goto(f"{fraud}/compare/?v=1")
        expect(alice.locator("#compare-problem")).to_contain_text("Choose 2 to 5")
        alice.goto(f"{fraud}/compare/?" + "&".join(f"v={n}" for n in range(1, 7)))
        expect(alice.locator("#compare-problem")).to_contain_text("At most 5 versions")

        # A version on an unprotected branch is offered no production, but an explanation.
        alice.goto(f"{fraud}/versions/3/")
        alice.click(".stage-selector summary")
        offer = alice.locator(".stage-selector a", has_text="Production")
        expect(offer).to_contain_text("needs a protected branch")
        offer.click()
        expect(alice.locator("#production-unprotected")).to_contain_text("not protected")
        assert alice.locator("#stage-request form").count() == 0

        # The activity log renders comments' Markdown and links its targets.
        alice.goto(f"{fraud}/?tab=activity")
        events = alice.locator("table.events")
        expect(events.locator("strong", has_text="shadow traffic")).to_be_visible()
        target = events.locator("tr", has_text="comment.added").locator("a").first
        target.click()
        alice.wait_for_url(f"{fraud}/versions/2/")
        expect(alice.locator("h1")).to_contain_text("Version 2")

        # My requests, and the notification settings, from the navigation.
        alice.click("nav a:has-text('My requests')")
        expect(alice.locator("table tbody tr")).to_have_count(2)
        alice.click("nav a:has-text('Notifications')")
        alice.wait_for_url(f"{base}/notifications/**")
        expect(alice.locator("h1")).to_contain_text("Notification")

        # 404 and 500 are the product's own pages, with its stylesheet.
        response = alice.goto(f"{base}/orgs/acme/models/no-such-model/")
        assert response.status == 404
        expect(alice.locator("h1")).to_have_text("Not found")
        assert alice.locator("link[href*='modelvault/site.css']").count() == 1
        settings.ROOT_URLCONF = __name__
        response = alice.goto(f"{base}/journey/failure/")
        assert response.status == 500
        expect(alice.locator("h1")).to_have_text("Something went wrong")
        assert alice.locator("link[href*='modelvault/site.css']").count() == 1
        assert violations(alice) == []
    finally:
        alice.context.close()
    assert Flag.objects.open().count() == 1
