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


@pytest.mark.django_db
def test_it_draws_the_stage_chart_and_lists_my_pending_reviews(model, alice, bob_client):
    from approvals.services import request_create

    version = version_create(actor=alice, model=model)
    request_create(actor=alice, version=version, to_stage="staging", comment="please")
    page = bob_client.get(reverse("catalog:home"))
    assert [bar.value for bar in page.context["chart"]] == [1, 0, 0, 0, 0]
    assert b"<svg" in page.content
    assert [r.version_id for r in page.context["reviews"]] == [version.pk]


@pytest.mark.django_db
def test_it_styles_the_password_change_page(alice_client):
    page = alice_client.get(reverse("catalog:password-change"))
    assert page.status_code == 200
    assert b"Change your password" in page.content


@pytest.mark.django_db
def test_it_answers_a_404_page_for_an_unknown_org(alice_client):
    page = alice_client.get(reverse("catalog:catalog", args=["nowhere"]))
    assert page.status_code == 404
    assert b"Not found" in page.content


def test_the_catalog_link_takes_alice_to_her_orgs_catalog(alice_client):
    response = alice_client.get(reverse("catalog:catalog-index"))
    assert (response.status_code, response["Location"]) == (302, "/orgs/acme/models/")


def test_the_catalog_link_of_someone_in_no_org_says_so(client, django_user_model):
    """A superuser made before any org (createsuperuser) belongs to none: not an error."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = client.get(reverse("catalog:catalog-index"), follow=True)
    assert response.status_code == 200
    assert "You belong to no organization yet" in response.content.decode()


def test_the_footer_shows_the_servers_version(alice_client):
    from config.version import VERSION

    body = alice_client.get(reverse("catalog:home")).content.decode()
    assert f"Modelvault {VERSION}" in body and VERSION != "unknown"
    assert 'href="/api/v1/docs"' in body
