"""The single sign-on journey in Chromium: sign in at the real test provider, land in
Modelvault in the mapped org and team, see that org's models only; lose the group at the
provider, sign in again, and have no access."""

import pytest
from playwright.sync_api import expect

from registry.models import Membership, Team
from registry.services.orgs import team_create
from registry.services.registered_models import model_create
from sso.models import ManagedMembership
from sso.services import mapping_create
from tests.e2e.pages import new_context, violations
from tests.sso.conftest import PROVIDER_NAME

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(browser, live_server, provider, username: str):
    """A new browser context, signed in through the provider as `username`."""
    page = new_context(browser).new_page()
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/login/")
    page.click(f"text=Sign in with {PROVIDER_NAME}")
    page.wait_for_url(f"{provider.url}/accounts/login/**")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"{username}-at-the-idp")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def test_it_signs_in_with_the_provider_and_loses_access_with_the_group(
    browser, live_server, oidc_provider, sso_settings, cast, model
):
    model_create(actor=cast.mallory, org=cast.globex, name="globex-secret")
    risk = team_create(actor=cast.admin, org=cast.acme, name="risk")
    mapping_create(actor=cast.admin, org=cast.acme, group="ml", role="member", teams=[risk])
    oidc_provider.client(f"{live_server.url}/sso/callback/")
    oidc_provider.user("dave", groups=["ml"])

    page = sign_in(browser, live_server, oidc_provider, "dave")
    try:
        models = page.locator(".model-list").inner_text()
        assert "fraud" in models and "globex-secret" not in models
        membership = Membership.objects.get(user__username="dave")
        assert (membership.org, membership.role) == (cast.acme, "member")
        assert ManagedMembership.objects.filter(membership=membership).exists()
        assert Team.objects.get(pk=risk.pk).group.user_set.filter(username="dave").exists()
        page.goto(f"{live_server.url}/orgs/acme/models/")
        expect(page.locator("main")).to_contain_text("fraud")
        assert page.goto(f"{live_server.url}/orgs/globex/models/").status == 404
        assert violations(page) == []
    finally:
        page.context.close()

    oidc_provider.user("dave", groups=[])  # the provider's operator takes the group away
    page = sign_in(browser, live_server, oidc_provider, "dave")
    try:
        assert not Membership.objects.filter(user__username="dave").exists()
        assert "fraud" not in page.locator("main").inner_text()
        assert page.goto(f"{live_server.url}/orgs/acme/models/").status == 404
        assert page.goto(f"{live_server.url}/orgs/acme/models/fraud/").status == 404
        assert violations(page) == []
    finally:
        page.context.close()
