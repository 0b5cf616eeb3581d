import base64
import json

import pytest

from api.schemas import ModelOut
from registry.models import RegisteredModel
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.api.conftest import error_code, last_event

BASE = "/orgs/acme/models"


def test_it_lists_the_models_the_caller_may_view(api, model, alice_token):
    response = api("GET", BASE, alice_token)
    assert response.status_code == 200
    body = response.json()
    assert [m["name"] for m in body["items"]] == ["fraud"]
    assert body["next"] is None
    assert body["items"][0]["org"] == "acme"


def test_it_hides_an_org_from_an_outsider(api, model, mallory_token):
    response = api("GET", BASE, mallory_token)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_it_hides_private_models_from_the_list(api, model, admin, carol_token):
    model_create(actor=admin, org=model.org, name="secret", visibility="private")
    names = [m["name"] for m in api("GET", BASE, carol_token).json()["items"]]
    assert names == ["fraud"]


def test_it_paginates_with_a_cursor(api, acme, alice, alice_token):
    for i in range(5):
        model_create(actor=alice, org=acme, name=f"m{i}")
    first = api("GET", BASE, alice_token, limit=2).json()
    assert [m["name"] for m in first["items"]] == ["m0", "m1"]
    second = api("GET", BASE, alice_token, limit=2, cursor=first["next"]).json()
    assert [m["name"] for m in second["items"]] == ["m2", "m3"]
    third = api("GET", BASE, alice_token, limit=2, cursor=second["next"]).json()
    assert [m["name"] for m in third["items"]] == ["m4"]
    assert third["next"] is None


def test_it_caps_the_page_size(api, acme, alice, alice_token):
    model_create(actor=alice, org=acme, name="one")
    response = api("GET", BASE, alice_token, limit=10_000)
    assert response.status_code == 200


def test_it_refuses_a_forged_cursor(api, model, alice_token):
    response = api("GET", BASE, alice_token, cursor="not-a-cursor!!")
    assert response.status_code == 400
    assert error_code(response) == "invalid"


@pytest.mark.parametrize(
    "path",
    [
        "/orgs/acme/activity",
        "/orgs/acme/approvals/pending",
        "/orgs/acme/webhooks",
        "/orgs/acme/models/fraud/versions",
        BASE,
    ],
)
@pytest.mark.parametrize("values", [["x"], [1.5], [None], [10**30]])
def test_it_refuses_a_cursor_whose_values_its_keys_cannot_hold(
    api, model, admin_token, path, values
):
    """Well-formed but forged: a text where the key is an integer column (once a 500 from
    the database), a number where it is text."""
    if path == BASE and values == ["x"]:
        values = [1]
    forged = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    response = api("GET", path, admin_token, cursor=forged)
    assert response.status_code == 400, response.content
    assert error_code(response) == "invalid"


def test_it_filters_models_by_a_stage_they_hold(api, model, admin, alice, alice_token):
    from approvals.services import request_approve, request_create

    other = model_create(actor=alice, org=model.org, name="other")
    version_create(actor=alice, model=other)
    v = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=v, to_stage="staging")
    request_approve(actor=admin, request=request)
    names = [m["name"] for m in api("GET", BASE, alice_token, stage="staging").json()["items"]]
    assert names == ["fraud"]


def test_it_filters_models_by_query(api, model, alice, alice_token):
    version_create(actor=alice, model=model, metrics={"auc": 0.95})
    other = model_create(actor=alice, org=model.org, name="other")
    version_create(actor=alice, model=other, metrics={"auc": 0.5})
    names = [
        m["name"] for m in api("GET", BASE, alice_token, q="metrics.auc >= 0.9").json()["items"]
    ]
    assert names == ["fraud"]


def test_it_answers_a_malformed_query_with_400(api, model, alice_token):
    response = api("GET", BASE, alice_token, q="stage ==")
    assert response.status_code == 400
    assert error_code(response) == "invalid"


@pytest.mark.parametrize("rows", [5, 50])
def test_it_lists_in_a_fixed_number_of_queries(
    api, acme, alice, alice_token, rows, django_assert_max_num_queries
):
    for i in range(rows):
        model_create(actor=alice, org=acme, name=f"m{i:03}")
    with django_assert_max_num_queries(8):
        response = api("GET", BASE, alice_token, limit=200)
    assert len(response.json()["items"]) == rows


def test_it_creates_a_model(api, acme, alice_token):
    response = api("POST", BASE, alice_token, {"name": "churn", "description": "Churn"})
    assert response.status_code == 201
    assert response.json()["owner"] == "alice"
    created = RegisteredModel.objects.get(org=acme, name="churn")
    assert created.description == "Churn"
    assert last_event(acme).verb == "model.created"


def test_it_answers_a_creation_with_what_a_read_returns(api, acme, alice_token):
    payload = {"name": "churn", "description": "Churn", "tags": {"team": "risk"}}
    created = api("POST", BASE, alice_token, payload)
    assert created.status_code == 201
    ModelOut.model_validate(created.json())
    assert created.json() == api("GET", f"{BASE}/churn", alice_token).json()


def test_it_refuses_a_model_in_another_org(api, acme, mallory_token):
    response = api("POST", BASE, mallory_token, {"name": "intruder"})
    assert response.status_code == 404
    assert not RegisteredModel.objects.filter(name="intruder").exists()


def test_it_refuses_a_duplicate_name_with_409(api, model, alice_token):
    response = api("POST", BASE, alice_token, {"name": "fraud"})
    assert response.status_code == 409
    assert error_code(response) == "conflict"


@pytest.mark.parametrize("field", ["org", "id", "created_by", "created_at"])
def test_it_refuses_read_only_fields_on_create(api, acme, alice_token, field):
    response = api("POST", BASE, alice_token, {"name": "x", field: "globex"})
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
    assert not RegisteredModel.objects.filter(name="x").exists()


def test_it_reads_a_model(api, model, carol_token):
    response = api("GET", f"{BASE}/fraud", carol_token)
    assert response.status_code == 200
    assert response.json()["name"] == "fraud"


def test_it_hides_a_model_from_an_outsider(api, model, mallory_token):
    assert api("GET", f"{BASE}/fraud", mallory_token).status_code == 404


def test_it_updates_a_model(api, model, alice_token):
    response = api("PATCH", f"{BASE}/fraud", alice_token, {"description": "New"})
    assert response.status_code == 200
    model.refresh_from_db()
    assert model.description == "New"
    event = last_event(model.org)
    assert event.verb == "model.updated"
    assert event.changes["description"] == ["Card fraud scoring", "New"]


def test_it_refuses_a_model_update_to_a_viewer(api, model, carol_token):
    response = api("PATCH", f"{BASE}/fraud", carol_token, {"description": "New"})
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_it_refuses_a_model_update_to_an_outsider(api, model, mallory_token):
    assert api("PATCH", f"{BASE}/fraud", mallory_token, {"description": "x"}).status_code == 404


@pytest.mark.parametrize("field", ["org", "created_by", "id", "created_at"])
def test_it_refuses_mass_assignment_on_a_model(api, model, admin_token, field):
    response = api("PATCH", f"{BASE}/fraud", admin_token, {field: "globex"})
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_it_changes_the_owner_by_username(api, model, admin_token):
    response = api("PATCH", f"{BASE}/fraud", admin_token, {"owner": "alice"})
    assert response.status_code == 200
    assert response.json()["owner"] == "alice"


def test_it_deletes_a_model(api, model, admin_token):
    response = api("DELETE", f"{BASE}/fraud", admin_token)
    assert response.status_code == 204
    assert not RegisteredModel.objects.filter(pk=model.pk).exists()
    assert last_event(model.org).verb == "model.deleted"


def test_it_refuses_a_model_deletion_to_a_viewer(api, model, carol_token):
    assert api("DELETE", f"{BASE}/fraud", carol_token).status_code == 403
    assert RegisteredModel.objects.filter(pk=model.pk).exists()


def test_it_refuses_a_model_deletion_to_an_outsider(api, model, mallory_token):
    assert api("DELETE", f"{BASE}/fraud", mallory_token).status_code == 404


def test_it_refuses_deleting_a_model_holding_a_closed_version(api, model, alice, admin_token):
    version_create(actor=alice, model=model, lock_level="closed")
    response = api("DELETE", f"{BASE}/fraud", admin_token)
    assert response.status_code == 423
    assert error_code(response) == "locked"


@pytest.mark.parametrize(("method", "path"), [("PUT", BASE), ("POST", f"{BASE}/fraud")])
def test_it_answers_a_wrong_method_with_json_405(api, model, alice_token, method, path):
    response = api(method, path, alice_token, {})
    assert response.status_code == 405
    assert "Allow" in response.headers
