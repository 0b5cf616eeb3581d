import pytest
from django.urls import reverse

from registry.demo import ensure_shared_model
from registry.models import Visibility
from registry.services.registered_models import model_update
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

CATALOG_QUERIES = 6


def catalog_url(**params) -> str:
    from urllib.parse import urlencode

    url = reverse("catalog:catalog", args=["acme"])
    return f"{url}?{urlencode(params)}" if params else url


def test_it_shows_a_tile_per_model_with_counts_per_stage(alice_client, model, alice):
    version_create(actor=alice, model=model)
    version_create(actor=alice, model=model)
    page = alice_client.get(catalog_url())
    tile = next(m for m in page.context["page"] if m.name == "fraud")
    counts = {stage: n for stage, _, n in tile.stage_counts}
    assert (tile.version_count, counts["unassigned"], counts["production"]) == (2, 2, 0)
    assert b"Unassigned <b>2</b>" in page.content


def test_it_searches_by_name_and_by_tag(alice_client, cast, admin):
    ensure_shared_model(cast, "fraud")
    churn = ensure_shared_model(cast, "churn")
    model_update(actor=admin, model=churn, tags={"team": "nlp"})
    names = [m.name for m in alice_client.get(catalog_url(q="fra")).context["page"]]
    assert names == ["fraud"]
    names = [m.name for m in alice_client.get(catalog_url(q="team=nlp")).context["page"]]
    assert names == ["churn"]


def test_it_filters_by_a_stage_a_model_has(alice_client, cast, alice):
    from approvals.services import request_approve, request_create

    fraud = ensure_shared_model(cast, "fraud")
    ensure_shared_model(cast, "churn")
    version = version_create(actor=alice, model=fraud)
    change = request_create(actor=alice, version=version, to_stage="development")
    request_approve(actor=cast.bob, request=change)
    names = [m.name for m in alice_client.get(catalog_url(stage="development")).context["page"]]
    assert names == ["fraud"]


def test_it_sorts_by_the_number_of_versions(alice_client, cast, alice):
    ensure_shared_model(cast, "aaa")
    busy = ensure_shared_model(cast, "zzz")
    version_create(actor=alice, model=busy)
    names = [m.name for m in alice_client.get(catalog_url(sort="-versions")).context["page"]]
    assert names[0] == "zzz"


def test_it_paginates(alice_client, cast):
    for index in range(30):
        ensure_shared_model(cast, f"m-{index:02d}")
    first = alice_client.get(catalog_url())
    second = alice_client.get(catalog_url(page=2))
    assert len(first.context["page"]) == 24
    assert len(second.context["page"]) == 6
    assert b'rel="next"' in first.content


def test_it_hides_private_models_from_those_not_granted(carol_client, cast):
    ensure_shared_model(cast, "secret", visibility=Visibility.PRIVATE)
    assert b"secret" not in carol_client.get(catalog_url()).content


def test_it_answers_404_to_an_outsider(mallory_client, model):
    assert mallory_client.get(catalog_url()).status_code == 404


def test_it_redirects_models_to_the_users_first_org(alice_client, cast):
    response = alice_client.get(reverse("catalog:catalog-index"))
    assert response["Location"] == catalog_url()


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_its_query_count_flat(alice_client, cast, alice, rows, django_assert_num_queries):
    for index in range(rows):
        version_create(actor=alice, model=ensure_shared_model(cast, f"model-{index:02d}"))
    with django_assert_num_queries(CATALOG_QUERIES):
        response = alice_client.get(catalog_url())
    assert response.context["page"].paginator.count == rows


def test_it_searches_with_the_query_language(alice_client, cast, alice):
    fraud = ensure_shared_model(cast, "fraud")
    churn = ensure_shared_model(cast, "churn")
    version_create(actor=alice, model=fraud, metrics={"auc": 0.95})
    version_create(actor=alice, model=churn, metrics={"auc": 0.7})
    page = alice_client.get(catalog_url(q="metrics.auc >= 0.9"))
    assert [m.name for m in page.context["page"]] == ["fraud"]


def test_it_answers_a_malformed_query_on_the_page(alice_client, model):
    page = alice_client.get(catalog_url(q="metrics.auc >= "))
    assert page.status_code == 200
    assert page.context["query_error"]
    assert b'role="alert"' in page.content
