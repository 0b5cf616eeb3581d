import pytest
from django.urls import reverse

from registry.services.flags import flag_raise
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

URL = reverse("catalog:compare", args=["acme", "fraud"])


def test_it_highlights_differences_and_charts_metrics(alice_client, model, alice):
    version_create(actor=alice, model=model, params={"lr": 0.1, "depth": 6}, metrics={"auc": 0.8})
    version_create(actor=alice, model=model, params={"lr": 0.05, "depth": 6}, metrics={"auc": 0.9})
    page = alice_client.get(URL + "?a=1&b=2")
    params = next(s for s in page.context["sections"] if s["name"] == "Params")
    assert {r["key"]: r["differs"] for r in params["rows"]} == {"depth": False, "lr": True}
    (chart,) = page.context["charts"]
    assert [b["value"] for b in chart["bars"]] == [0.8, 0.9]
    assert b"<svg" in page.content


def test_it_compares_up_to_five_versions(alice_client, model, alice):
    for index in range(6):
        version_create(actor=alice, model=model, metrics={"auc": 0.5 + index / 10})
    page = alice_client.get(URL + "?v=1&v=3&v=5")
    assert [v.number for v in page.context["versions"]] == [1, 3, 5]
    metrics = next(s for s in page.context["sections"] if s["name"] == "Metrics")
    assert metrics["rows"][0]["values"] == ["0.5", "0.7", "0.9"]
    page = alice_client.get(URL + "?" + "&".join(f"v={n}" for n in range(1, 7)))
    assert len(page.context["versions"]) == 5
    assert "At most 5 versions" in page.content.decode()
    page = alice_client.get(URL + "?v=2")
    assert page.context["sections"] == []
    assert "Choose 2 to 5 different versions" in page.content.decode()


def test_it_shows_values_and_a_scale_on_the_chart(alice_client, model, alice):
    version_create(actor=alice, model=model, metrics={"loss": 200})
    version_create(actor=alice, model=model, metrics={"loss": 50, "auc": 0.9})
    version_create(actor=alice, model=model, metrics={"loss": 100})
    page = alice_client.get(URL + "?v=1&v=2&v=3")
    charts = {chart["name"]: chart for chart in page.context["charts"]}
    # Each metric on its own scale: ticks from 0 to its highest value.
    assert [t["label"] for t in charts["loss"]["ticks"]] == ["0", "100", "200"]
    assert [t["label"] for t in charts["auc"]["ticks"]] == ["0", "0.45", "0.9"]
    assert [b["missing"] for b in charts["auc"]["bars"]] == [True, False, True]
    body = page.content.decode()
    assert ">200</text>" in body and ">50</text>" in body and ">0.9</text>" in body


def test_it_shows_open_flags_of_the_compared_versions(alice_client, model, alice, carol):
    first = version_create(actor=alice, model=model)
    version_create(actor=alice, model=model)
    flag_raise(actor=carol, version=first, severity="high", summary="drift")
    body = alice_client.get(URL + "?v=1&v=2").content.decode()
    assert 'data-open-flags="1"' in body


def test_it_answers_404_to_an_outsider(mallory_client, model, alice):
    version_create(actor=alice, model=model)
    assert mallory_client.get(URL).status_code == 404


def test_it_refuses_post(alice_client, model):
    assert alice_client.post(URL).status_code == 405
