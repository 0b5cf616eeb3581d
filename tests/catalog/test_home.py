import pytest
from django.urls import reverse

from registry.demo import ensure_shared_model
from registry.models import Visibility
from registry.services.versions import version_create


@pytest.fixture
def private_model(cast):
    return ensure_shared_model(cast, "churn", visibility=Visibility.PRIVATE)


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_login(client):
    response = client.get(reverse("catalog:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_counts_only_what_the_user_may_view(
    model, private_model, alice, carol_client, alice_client
):
    version_create(actor=alice, model=model)
    version_create(actor=alice, model=private_model)
    alice_page = alice_client.get(reverse("catalog:home"))
    carol_page = carol_client.get(reverse("catalog:home"))
    assert (alice_page.context["model_count"], alice_page.context["version_count"]) == (2, 2)
    assert (carol_page.context["model_count"], carol_page.context["version_count"]) == (1, 1)
    assert b"churn" not in carol_page.content


@pytest.mark.django_db
def test_it_shows_nothing_of_another_org(model, alice, mallory_client):
    version_create(actor=alice, model=model)
    page = mallory_client.get(reverse("catalog:home"))
    assert page.context["model_count"] == 0
    assert b"fraud" not in page.content


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_its_query_count_flat(
    cast, alice, alice_client, rows, django_assert_max_num_queries
):
    for index in range(rows):
        ensure_shared_model(cast, f"model-{index}")
    with django_assert_max_num_queries(8):
        response = alice_client.get(reverse("catalog:home"))
    assert response.context["model_count"] == rows
