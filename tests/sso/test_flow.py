"""Signing in through the real test provider (tests/oidc_provider/), without a browser: the
user's side of the provider is a requests session, Modelvault's is the test client, and
Modelvault's back channel (discovery, token, userinfo, keys) calls the provider itself."""

import re
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from registry.models import ActivityEvent, Membership, Team
from registry.services.orgs import team_create
from registry.services.tokens import token_create
from sso.models import Identity, ManagedMembership
from sso.services import mapping_create
from tests.conftest import messages_of

CALLBACK = "http://testserver/sso/callback/"


def sign_in(client: Client, provider, username: str):
    """Start at Modelvault, sign in at the provider as `username`, come back: the answer
    of Modelvault's callback."""
    start = client.get("/sso/login/")
    assert start.status_code == 302, start
    browser = requests.Session()
    location = start["Location"]
    assert location.startswith(provider.url)
    while location.startswith(provider.url):
        answer = browser.get(location, allow_redirects=False, timeout=10)
        if answer.status_code == 200:  # the provider's login form
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', answer.text)
            answer = browser.post(
                location,
                data={
                    "csrfmiddlewaretoken": token.group(1),
                    "username": username,
                    "password": f"{username}-at-the-idp",
                    "next": re.search(r'name="next" value="([^"]+)"', answer.text)
                    .group(1)
                    .replace("&amp;", "&"),
                },
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code == 302, answer.text
        location = requests.compat.urljoin(location, answer.headers["Location"])
    assert location.startswith(CALLBACK), location
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}")


@pytest.fixture
def provider(oidc_provider, sso_settings):
    oidc_provider.client(CALLBACK)
    return oidc_provider


@pytest.fixture
def ml_mapping(admin, acme):
    risk = team_create(actor=admin, org=acme, name="risk")
    return mapping_create(actor=admin, org=acme, group="ml", role="member", teams=[risk])


def logged_in_as(client: Client):
    response = client.get("/")
    return response.wsgi_request.user if response.status_code == 200 else None


def test_it_signs_a_new_user_in_with_the_mapped_membership_and_team(
    provider, ml_mapping, acme, model
):
    provider.user("dave", groups=["ml", "unmapped"])
    response = sign_in(Client(), provider, "dave")
    assert response.status_code == 302 and response["Location"] == "/"
    dave = Membership.objects.get(org=acme, user__username="dave")
    assert dave.role == "member"
    assert ManagedMembership.objects.filter(membership=dave).exists()
    assert Team.objects.get(org=acme, name="risk").group.user_set.filter(pk=dave.user_id).exists()
    identity = Identity.objects.get(user=dave.user)
    assert identity.issuer == provider.issuer and identity.subject
    assert dave.user.email == "dave@example.com" and not dave.user.has_usable_password()
    verbs = list(
        ActivityEvent.objects.filter(org=acme).order_by("-seq").values_list("verb", flat=True)[:2]
    )
    assert verbs == ["team.updated", "membership.created"]


def test_it_refuses_an_address_the_provider_has_not_verified(provider, ml_mapping):
    provider.user("eve", groups=["ml"], unverified=True)
    client = Client()
    response = sign_in(client, provider, "eve")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert any("not verified" in text for text in messages_of(response))
    assert not Identity.objects.exists()
    assert not Membership.objects.filter(user__username="eve").exists()
    assert logged_in_as(client) is None


def test_it_takes_the_membership_away_at_once_when_the_group_is_gone(
    provider, ml_mapping, acme, model
):
    provider.user("frank", groups=["ml"])
    sign_in(Client(), provider, "frank")
    frank = Membership.objects.get(org=acme, user__username="frank").user
    _, token = token_create(actor=frank, user=frank, name="laptop", org=acme)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/v1/orgs/acme/models/fraud").status_code == 200

    provider.user("frank", groups=[])
    response = sign_in(Client(), provider, "frank")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(org=acme, user=frank).exists()
    assert not Team.objects.get(name="risk").group.user_set.filter(pk=frank.pk).exists()
    event = ActivityEvent.objects.filter(org=acme).order_by("-seq").first()
    assert event.verb == "membership.deleted" and event.actor_name == ""
    # The token resolves membership at each request: no wait, no cache.
    assert api.get("/api/v1/orgs/acme/models/fraud").status_code == 404


def test_it_finds_the_account_by_subject_after_an_address_change(provider, ml_mapping):
    provider.user("gina", groups=["ml"])
    sign_in(Client(), provider, "gina")
    provider.user("gina", groups=["ml"], email="gina.new@example.com")
    client = Client()
    sign_in(client, provider, "gina")
    user = logged_in_as(client)
    assert user.username == "gina" and user.email == "gina.new@example.com"
    assert Identity.objects.filter(user=user).count() == 1


def test_it_links_an_account_by_verified_address_and_leaves_a_manual_membership_alone(
    provider, admin, acme, carol
):
    mapping_create(actor=admin, org=acme, group="ml-admins", role="admin")
    provider.user("carol-at-idp", groups=["ml-admins"], email=carol.email)
    client = Client()
    sign_in(client, provider, "carol-at-idp")
    assert logged_in_as(client) == carol
    assert Membership.objects.get(org=acme, user=carol).role == "member"  # added by hand
    assert Identity.objects.get(user=carol).issuer == provider.issuer
