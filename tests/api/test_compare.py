"""Comparing versions and a metric's trend over HTTP (SPEC 4.1's compare page and model card
chart, computed by registry.compare for both)."""

import pytest

from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.api.conftest import error_code

pytestmark = pytest.mark.django_db

MODEL = "/orgs/acme/models/fraud"


@pytest.fixture
def three(model, alice):
    return [
        version_create(
            actor=alice,
            model=model,
            params={"lr": 0.1, "depth": 4},
            metrics={"auc": 0.8},
            input_schema=[{"name": "amount", "type": "double"}],
        ),
        version_create(
            actor=alice,
            model=model,
            params={"lr": 0.05, "depth": 4},
            metrics={"auc": 0.85, "loss": 1200},
            input_schema=[{"name": "amount", "type": "double"}],
        ),
        version_create(actor=alice, model=model, params={"lr": 0.05}, metrics={"auc": 0.9}),
    ]


def test_it_compares_versions_in_the_order_asked(api, three, carol_token):
    response = api("GET", f"{MODEL}/compare?v=3&v=1&v=2", carol_token)
    assert response.status_code == 200
    body = response.json()
    assert [v["number"] for v in body["versions"]] == [3, 1, 2]
    assert body["versions"][0]["digest"] == three[2].digest
    assert body["sections"]["params"] == [
        {"key": "depth", "values": [None, 4, 4], "differs": True},
        {"key": "lr", "values": [0.05, 0.1, 0.05], "differs": True},
    ]
    assert body["sections"]["input_schema"] == [
        {
            "key": "",
            "values": [{}, [{"name": "amount", "type": "double"}]]
            + [[{"name": "amount", "type": "double"}]],
            "differs": True,
        }
    ]
    assert body["metrics"] == [
        {"name": "auc", "values": [0.9, 0.8, 0.85]},
        {"name": "loss", "values": [None, None, 1200.0]},
    ]
    assert set(body["sections"]) == {
        "params",
        "metrics",
        "environment",
        "input_schema",
        "output_schema",
    }


def test_it_says_a_row_is_the_same_when_it_is(api, three, carol_token):
    rows = api("GET", f"{MODEL}/compare?v=1&v=2", carol_token).json()["sections"]["params"]
    assert {r["key"]: r["differs"] for r in rows} == {"depth": False, "lr": True}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?v=1", "compare 2 to 5 different versions, not 1"),
        ("?v=1&v=1", "not 1"),
        ("?v=1&v=2&v=3&v=4&v=5&v=6", "not 6"),
        ("?v=one&v=2", "v"),
        ("?v=0&v=2", "v"),
    ],
)
def test_it_refuses_a_bad_choice_of_versions(api, three, carol_token, query, message):
    response = api("GET", f"{MODEL}/compare{query}", carol_token)
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert message in response.json()["error"]["message"]


def test_it_compares_the_latest_two_by_default(api, three, model, alice, carol_token):
    body = api("GET", f"{MODEL}/compare", carol_token).json()
    assert [v["number"] for v in body["versions"]] == [2, 3]


def test_it_names_a_version_that_does_not_exist(api, three, carol_token):
    response = api("GET", f"{MODEL}/compare?v=1&v=9", carol_token)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "version 9 of model fraud not found"


def test_it_hides_the_comparison_from_an_outsider(api, three, mallory_token):
    assert api("GET", f"{MODEL}/compare?v=1&v=2", mallory_token).status_code == 404


def test_it_hides_another_orgs_model_from_compare_and_trend(api, globex, mallory, carol_token):
    found = model_create(actor=mallory, org=globex, name="fraud")
    version_create(actor=mallory, model=found, metrics={"auc": 0.5})
    version_create(actor=mallory, model=found, metrics={"auc": 0.6})
    base = "/orgs/globex/models/fraud"
    assert api("GET", f"{base}/compare?v=1&v=2", carol_token).status_code == 404
    assert api("GET", f"{base}/trend", carol_token).status_code == 404


def test_it_answers_a_wrong_method_on_compare_and_trend(api, three, alice_token):
    assert api("POST", f"{MODEL}/compare?v=1&v=2", alice_token, {}).status_code == 405
    assert api("DELETE", f"{MODEL}/trend", alice_token).status_code == 405


def test_it_compares_in_a_fixed_number_of_queries(
    api, three, carol_token, django_assert_num_queries
):
    api("GET", f"{MODEL}/compare?v=1&v=2", carol_token)
    # token; the model with the caller's access; the versions with their branch
    with django_assert_num_queries(3):
        assert api("GET", f"{MODEL}/compare?v=1&v=2&v=3", carol_token).status_code == 200


# Trend


def test_it_follows_a_metric_across_versions_oldest_first(api, three, carol_token):
    response = api("GET", f"{MODEL}/trend", carol_token)
    assert response.status_code == 200
    assert response.json() == {
        "model": "fraud",
        "metric": "auc",
        "metrics": ["auc", "loss"],
        "points": [
            {"version": 1, "value": 0.8},
            {"version": 2, "value": 0.85},
            {"version": 3, "value": 0.9},
        ],
    }
    loss = api("GET", f"{MODEL}/trend", carol_token, metric="loss").json()
    assert loss["points"] == [{"version": 2, "value": 1200.0}]


def test_it_covers_the_latest_versions_asked(api, three, carol_token):
    body = api("GET", f"{MODEL}/trend", carol_token, last=2).json()
    assert [p["version"] for p in body["points"]] == [2, 3]
    assert body["metrics"] == ["auc", "loss"]


def test_it_answers_an_empty_trend_for_a_model_without_versions(api, model, carol_token):
    body = api("GET", f"{MODEL}/trend", carol_token).json()
    assert (body["metric"], body["metrics"], body["points"]) == (None, [], [])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"metric": "lr"}, "has a numeric metric 'lr'; they have: auc, loss"),
        ({"metric": "f1"}, "'f1'"),
        ({"last": 0}, "last"),
        ({"last": 201}, "last"),
        ({"last": "many"}, "last"),
    ],
)
def test_it_refuses_a_bad_trend_query(api, three, carol_token, query, message):
    response = api("GET", f"{MODEL}/trend", carol_token, **query)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_it_hides_the_trend_from_an_outsider(api, three, mallory_token):
    assert api("GET", f"{MODEL}/trend", mallory_token).status_code == 404


@pytest.mark.parametrize("rows", [5, 40])
def test_it_draws_the_trend_in_a_fixed_number_of_queries(
    api, model, alice, carol_token, rows, django_assert_num_queries
):
    for index in range(rows):
        version_create(actor=alice, model=model, metrics={"auc": index / 100})
    api("GET", f"{MODEL}/trend", carol_token)
    # token; the model with the caller's access; the versions' numbers and metrics
    with django_assert_num_queries(3):
        response = api("GET", f"{MODEL}/trend", carol_token, last=200)
    assert len(response.json()["points"]) == rows
