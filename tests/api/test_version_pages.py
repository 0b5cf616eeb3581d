"""Pages of versions are built from rows, not model instances, and written without
django-ninja's validation (api.render): each item must still be exactly what GET
of that version answers, and each page must still match its response schema."""

import io

import pytest

from api.schemas import ModelPage, VersionPage
from approvals.services import request_approve, request_create
from registry.services.registered_models import model_create, model_update
from registry.services.versions import version_create


@pytest.fixture
def described(model, admin, alice, bob):
    """fraud v1 (bare), v2 with a label, tags, two artifacts (out of path order), parents
    in two models, and a pending request with one approval of two."""
    other = model_create(actor=admin, org=model.org, name="churn", visibility="organization")
    churn_v1 = version_create(actor=admin, model=other)
    fraud_v1 = version_create(actor=alice, model=model)
    v2 = version_create(
        actor=alice,
        model=model,
        label="1.2.0",
        tags={"cohort": "gold", "team": "risk"},
        params={"depth": 4},
        metrics={"auc": 0.91},
        datasets=[{"name": "cards", "digest": "sha256:" + "a" * 64}],
        input_schema={"type": "object"},
        parents=[fraud_v1, churn_v1],
        artifacts={"z.bin": io.BytesIO(b"z"), "a.bin": io.BytesIO(b"aa")},
    )
    model_update(actor=admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=v2, to_stage="staging")
    request_approve(actor=bob, request=request, comment="looks right")
    return v2


@pytest.mark.django_db
def test_a_page_item_is_what_get_answers(api, admin_token, described):
    page = api("GET", "/orgs/acme/models/fraud/versions", admin_token)
    searched = api("GET", "/orgs/acme/versions", admin_token, q='tags.cohort == "gold"')
    by_digest = api("GET", f"/versions/by-digest/{described.digest}", admin_token)
    for response in (page, searched, by_digest):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json; charset=utf-8"
        VersionPage.model_validate(response.json())
    items = {item["number"]: item for item in page.json()["items"]}
    assert sorted(items) == [1, 2]
    for number, item in items.items():
        single = api("GET", f"/orgs/acme/models/fraud/versions/{number}", admin_token)
        assert item == single.json()
    v2 = items[2]
    assert [a["path"] for a in v2["artifacts"]] == ["a.bin", "z.bin"]
    assert {(p["model"], p["number"]) for p in v2["parents"]} == {("fraud", 1), ("churn", 1)}
    assert v2["pending_request"]["approvals"] == 1
    assert v2["pending_request"]["required_approvals"] == 2
    assert searched.json()["items"] == [v2]
    assert by_digest.json()["items"] == [v2]


@pytest.mark.django_db
def test_a_page_of_models_matches_its_schema(api, carol_token, model):
    response = api("GET", "/orgs/acme/models", carol_token)
    assert response.status_code == 200
    ModelPage.model_validate(response.json())
    single = api("GET", "/orgs/acme/models/fraud", carol_token).json()
    assert [m for m in response.json()["items"] if m["name"] == "fraud"] == [single]
