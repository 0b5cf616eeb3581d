"""Every kind of page under the Content-Security-Policy in a real browser: nothing refused,
so nothing broken (the UI journey itself is watched in test_journey.py)."""

import io

import pytest
from playwright.sync_api import expect

from registry.demo import demo_password
from registry.services.registered_models import model_update
from registry.services.versions import version_create
from tests.e2e.pages import login, new_context, violations

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def documented(model, alice):
    model_update(actor=alice, model=model, readme="Design: ![a pixel](https://tracker.example/p)")
    version_create(actor=alice, model=model, params={"depth": 4})
    return version_create(
        actor=alice,
        model=model,
        params={"depth": 6},
        readme="# Methods\n\nGradient-boosted trees.",
        artifacts={"model.bin": io.BytesIO(b"weights")},
    )


def test_it_refuses_nothing_on_the_ui_pages(browser, live_server, cast, documented):
    base = f"{live_server.url}/orgs/acme/models/fraud"
    v = f"{base}/versions/{documented.number}/"
    page = login(browser, live_server, "admin")
    try:
        for url in [
            f"{live_server.url}/",
            f"{live_server.url}/orgs/acme/models/",
            f"{base}/",
            f"{base}/?tab=versions",
            f"{base}/?tab=settings",
            v,
            f"{v}lock/",
            f"{v}documentation/",
            f"{base}/compare/?a=1&b={documented.number}",
            f"{live_server.url}/approvals/",
            f"{live_server.url}/account/tokens/",
            f"{live_server.url}/notifications/preferences/",
            f"{live_server.url}/orgs/acme/models/missing/",
        ]:
            page.goto(url)
        # The model card's tabs swap in through htmx: its requests are the page's own too.
        page.goto(f"{base}/")
        page.click("nav.tabs a:has-text('Activity')")
        expect(page.locator("table.events")).to_be_visible()
        # The lineage graph keeps its size from the stylesheet, not an inline style.
        page.goto(v)
        assert page.eval_on_selector("svg.lineage-graph", "e => getComputedStyle(e).maxWidth")
        assert violations(page) == []
    finally:
        page.context.close()


def test_it_refuses_nothing_in_the_admin_console(browser, live_server, cast, root, documented):
    context = new_context(browser)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("input[name=username]", "root")
        page.fill("input[name=password]", "root-demo")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        model = f"{live_server.url}/admin/registry/registeredmodel"
        for url in [
            f"{model}/",
            f"{model}/{documented.model.pk}/change/",
            f"{model}/{documented.model.pk}/history/",
            f"{model}/add/",
            f"{live_server.url}/admin/registry/modelversion/{documented.pk}/change/",
            f"{live_server.url}/admin/auth/user/",
            f"{live_server.url}/admin/auth/user/add/",
            f"{live_server.url}/admin/axes/accessattempt/",
        ]:
            page.goto(url)
        # The admin's own scripts run: the changelist's select-all box ticks every row.
        page.goto(f"{live_server.url}/admin/auth/user/")
        page.check("#action-toggle")
        expect(page.locator("tr.selected").first).to_be_visible()
        assert violations(page) == []
    finally:
        context.close()


def test_it_runs_the_api_docs_and_the_standalone_document(browser, live_server, documented):
    page = login(browser, live_server, "alice")
    try:
        page.goto(f"{live_server.url}/api/v1/docs")
        # Swagger UI ran (from this server's static files) and read the OpenAPI document.
        expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15000)
        url = (
            f"{live_server.url}/api/v1/orgs/acme/models/fraud/versions/"
            f"{documented.number}/documentation?format=html"
        )
        page.goto(url)
        # Its own <style> applied (through the nonce): the page is a 60rem column.
        assert page.evaluate("getComputedStyle(document.body).maxWidth") == "960px"
        assert page.locator("img").count() == 0  # the readme's pixel became a link
        assert violations(page) == []
    finally:
        page.context.close()


def test_it_shows_the_lockout_page_and_refuses_nothing(browser, live_server, cast, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page = new_context(browser).new_page()
    try:
        for password in ["guess-1", "guess-2"]:
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            expect(page.locator(".errorlist.nonfield")).to_be_visible()
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "guess-3")
        with page.expect_response(f"{live_server.url}/login/") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 429
        expect(page.locator(".locked-out")).to_contain_text("Try again in 15 minutes")
        # The right password, now: still the lockout page.
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", demo_password("alice"))
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Too many failed logins")
        assert violations(page) == []
    finally:
        page.context.close()


def test_it_reports_what_the_policy_refuses(browser, live_server, cast):
    # The watcher sees a refusal (else the tests above would prove nothing): an image of
    # another server, which the policy blocks before any request leaves the browser.
    page = login(browser, live_server, "carol")
    try:
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend',"
            " '<img src=\"https://tracker.example/p.gif\">')"
        )
        page.wait_for_timeout(300)
        assert any("img-src" in v and "tracker.example" in v for v in violations(page))
    finally:
        page.context.close()
