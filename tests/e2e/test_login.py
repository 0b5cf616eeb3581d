"""The login page in a real browser: the first step of every end-to-end journey."""

import pytest
from playwright.sync_api import expect

from registry.demo import demo_password

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_logs_alice_in_and_shows_her_models(browser, live_server, cast, model):
    page = browser.new_page()
    try:
        page.goto(f"{live_server.url}/")
        assert page.url.startswith(f"{live_server.url}/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", demo_password("alice"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        assert page.locator("h1").inner_text() == "Model registry"
        assert "fraud" in page.locator(".model-list").inner_text()
    finally:
        page.close()


def test_it_refuses_a_wrong_password(browser, live_server, cast):
    page = browser.new_page()
    try:
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "not-her-password")
        page.click("button[type=submit]")
        # The form posts to its own URL: wait for the answer's error, not for a URL change.
        expect(page.locator(".errorlist.nonfield")).to_contain_text("correct username and password")
        assert page.url.startswith(f"{live_server.url}/login/")
        page.goto(f"{live_server.url}/")
        assert page.url.startswith(f"{live_server.url}/login/")
    finally:
        page.close()
