import pytest

from registry.services.registered_models import model_create
from registry.services.versions import version_create


@pytest.fixture
def globex_version(globex, mallory):
    pricing = model_create(actor=mallory, org=globex, name="pricing")
    return version_create(actor=mallory, model=pricing, metrics={"auc": 0.99})


def test_it_searches_versions_across_models(api, model, version, alice, carol_token):
    other = model_create(actor=alice, org=model.org, name="other")
    version_create(actor=alice, model=other, metrics={"auc": 0.95})
    version_create(actor=alice, model=other, metrics={"auc": 0.2})
    body = api("GET", "/orgs/acme/versions", carol_token, q="metrics.auc >= 0.9").json()
    assert [(v["model"], v["number"]) for v in body["items"]] == [("fraud", 1), ("other", 1)]


def test_it_never_searches_across_orgs(api, version, globex_version, mallory_token, carol_token):
    assert api("GET", "/orgs/acme/versions", mallory_token, q="metrics.auc > 0").status_code == 404
    found = api("GET", "/orgs/globex/versions", mallory_token, q="metrics.auc > 0").json()
    assert [v["model"] for v in found["items"]] == ["pricing"]
    assert api("GET", "/orgs/globex/versions", carol_token).status_code == 404


def test_it_never_shows_private_models_in_search(api, model, admin, alice, carol_token):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    version_create(actor=admin, model=secret)
    body = api("GET", "/orgs/acme/versions", carol_token).json()
    assert "secret" not in {v["model"] for v in body["items"]}


def test_it_reports_a_malformed_query(api, version, carol_token):
    response = api("GET", "/orgs/acme/versions", carol_token, q="metrics.auc >>")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_it_resolves_a_digest(api, version, carol_token, mallory_token):
    body = api("GET", f"/versions/by-digest/{version.digest}", carol_token).json()
    assert [v["id"] for v in body["items"]] == [str(version.pk)]
    assert api("GET", f"/versions/by-digest/{version.digest}", mallory_token).json()["items"] == []


def test_it_answers_a_wrong_method_on_search(api, version, carol_token):
    assert api("POST", "/orgs/acme/versions", carol_token, {}).status_code == 405
    assert api("DELETE", f"/versions/by-digest/{version.digest}", carol_token).status_code == 405


@pytest.mark.parametrize("rows", [5, 50])
def test_it_searches_in_a_fixed_number_of_queries(
    api, model, alice, carol_token, rows, django_assert_max_num_queries
):
    for i in range(rows):
        version_create(actor=alice, model=model, tags={"team": "nlp"}, metrics={"auc": i / 100})
    # the token and its last use; the org with the caller's role; the role for the filter;
    # the page's ids; its versions, artifacts, parents and pending requests
    with django_assert_max_num_queries(9):
        response = api("GET", "/orgs/acme/versions", carol_token, q='tags.team == "nlp"', limit=200)
    assert len(response.json()["items"]) == rows


def test_it_pages_a_search_with_a_cursor_the_same_for_admin_and_member(
    api, model, alice, admin_token, carol_token
):
    """Pages follow on through their cursors, whether an org admin or a member asks, and
    repeat as they were."""
    other = model_create(actor=alice, org=model.org, name="other")
    for target in (model, other, model, other, model):
        version_create(actor=alice, model=target, tags={"team": "risk"})
    expected = [("fraud", 3), ("fraud", 2), ("fraud", 1), ("other", 2), ("other", 1)]
    for token in (admin_token, carol_token, admin_token):
        seen, cursor = [], None
        for _ in range(3):
            page = api(
                "GET",
                "/orgs/acme/versions",
                token,
                q='tags.team == "risk"',
                limit=2,
                **({"cursor": cursor} if cursor else {}),
            ).json()
            seen += [(v["model"], v["number"]) for v in page["items"]]
            cursor = page["next"]
        assert seen == expected
        assert cursor is None


@pytest.mark.parametrize("values", [[1, 2], ["fraud", "2"], ["fraud"]])
def test_it_refuses_a_search_cursor_of_the_wrong_kinds(api, version, carol_token, values):
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    response = api("GET", "/orgs/acme/versions", carol_token, cursor=forged)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_it_reports_a_bad_query_every_time(api, version, carol_token):
    for _ in range(2):  # nothing of a refused query is kept
        response = api("GET", "/orgs/acme/versions", carol_token, q="tags.team ==")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["message"].startswith("at column 13:")
        assert error["details"]["column"] == 13
