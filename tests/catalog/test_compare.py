import pytest
from django.urls import reverse

from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


def test_it_highlights_differences_and_charts_metrics(alice_client, model, alice):
    version_create(actor=alice, model=model, params={"lr": 0.1, "depth": 6}, metrics={"auc": 0.8})
    version_create(actor=alice, model=model, params={"lr": 0.05, "depth": 6}, metrics={"auc": 0.9})
    url = reverse("catalog:compare", args=["acme", "fraud"]) + "?a=1&b=2"
    page = alice_client.get(url)
    params = next(s for s in page.context["sections"] if s["name"] == "Params")
    assert {r["key"]: r["differs"] for r in params["rows"]} == {"depth": False, "lr": True}
    assert [b["value"] for b in page.context["bars"]] == [0.8, 0.9]
    assert b"<svg" in page.content


def test_it_answers_404_to_an_outsider(mallory_client, model, alice):
    version_create(actor=alice, model=model)
    assert mallory_client.get(reverse("catalog:compare", args=["acme", "fraud"])).status_code == 404


def test_it_refuses_post(alice_client, model):
    assert alice_client.post(reverse("catalog:compare", args=["acme", "fraud"])).status_code == 405
