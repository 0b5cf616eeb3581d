"""The product's own error pages, also under DEBUG (`make run`): a 404 is the 404 page, not
Django's technical one (unless DEBUG_TECHNICAL_404); the API keeps its JSON; and a 500
without DEBUG is the product's 500 page."""

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

pytestmark = pytest.mark.django_db

PRODUCT_404 = "There is nothing here, or nothing you may see."


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    return settings


def test_it_answers_an_unknown_address_with_the_product_404_under_debug(debug, alice_client):
    response = alice_client.get("/no/such/page/")
    assert response.status_code == 404
    assert PRODUCT_404 in response.content.decode()
    assert "Using the URLconf" not in response.content.decode()


def test_it_answers_a_missing_model_with_the_product_404_under_debug(debug, alice_client, acme):
    response = alice_client.get(reverse("catalog:model", args=["acme", "nothing"]))
    assert response.status_code == 404
    assert PRODUCT_404 in response.content.decode()


def test_it_still_redirects_to_the_address_with_a_slash(debug, alice_client, acme):
    response = alice_client.get("/orgs/acme/models")
    assert (response.status_code, response["Location"]) == (301, "/orgs/acme/models/")


def test_it_keeps_the_apis_json_404(debug, client, acme):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert PRODUCT_404 not in response.content.decode()


def test_it_shows_djangos_technical_404_when_asked(debug, alice_client):
    debug.DEBUG_TECHNICAL_404 = True
    response = alice_client.get("/no/such/page/")
    assert response.status_code == 404
    assert PRODUCT_404 not in response.content.decode()


def test_it_has_a_500_page_of_its_own_that_needs_no_request():
    page = render_to_string("500.html")
    assert "Something went wrong" in page and 'href="/"' in page
