"""Branches, protection, promotion and lineage over HTTP (SPEC 3.6, 4.2)."""

import io

import pytest

from registry.models import ActivityEvent, Blob, Branch, ModelVersion, Visibility
from registry.services.branches import branch_create, branch_set_protection
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.api.conftest import error_code, last_event

pytestmark = pytest.mark.django_db

MODEL = "/orgs/acme/models/fraud"
BRANCHES = f"{MODEL}/branches"
PROTECTION = f"{BRANCHES}/exp/protection"


@pytest.fixture
def experimental(model, exp, alice) -> ModelVersion:
    return version_create(
        actor=alice,
        model=model,
        branch="exp",
        params={"lr": 0.1},
        datasets=[{"name": "cards", "uri": "s3://d/cards", "version": "3"}],
        code_version={"repo": "ml/fraud", "commit": "abc123"},
        artifacts={"model.bin": io.BytesIO(b"weights")},
    )


# Listing and creating branches


def test_it_lists_branches_with_their_protection(api, exp, carol_token):
    response = api("GET", BRANCHES, carol_token)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(b["name"], b["protected"]) for b in items] == [("exp", False), ("main", True)]
    assert items[0]["created_by"] == "alice"


def test_it_hides_branches_from_an_outsider(api, model, mallory_token):
    assert api("GET", BRANCHES, mallory_token).status_code == 404


@pytest.mark.parametrize("rows", [5, 50])
def test_it_lists_branches_in_a_fixed_number_of_queries(
    api, model, alice, alice_token, rows, django_assert_max_num_queries
):
    for index in range(rows):
        branch_create(actor=alice, model=model, name=f"exp-{index:02}")
    with django_assert_max_num_queries(8):
        response = api("GET", BRANCHES, alice_token, limit=200)
    assert len(response.json()["items"]) == rows + 1


def test_it_creates_a_branch(api, model, alice_token):
    response = api("POST", BRANCHES, alice_token, {"name": "exp"})
    assert response.status_code == 201
    assert response.json()["name"] == "exp" and response.json()["protected"] is False
    assert Branch.objects.filter(model=model, name="exp", protected=False).exists()
    event = last_event(model.org)
    assert (event.verb, event.changes["name"]) == ("branch.created", [None, "exp"])


def test_it_answers_a_wrong_method_on_branches(api, model, alice_token):
    response = api("DELETE", BRANCHES, alice_token)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_it_refuses_a_branch_to_a_viewer_and_hides_it_from_an_outsider(
    api, model, carol_token, mallory_token
):
    assert api("POST", BRANCHES, carol_token, {"name": "exp"}).status_code == 403
    assert api("POST", BRANCHES, mallory_token, {"name": "exp"}).status_code == 404
    assert Branch.objects.filter(model=model).count() == 1


@pytest.mark.parametrize("body", [{"name": "exp", "protected": True}, {"name": "exp", "id": 1}])
def test_it_refuses_read_only_fields_on_a_branch(api, model, alice_token, body):
    response = api("POST", BRANCHES, alice_token, body)
    assert response.status_code == 400
    assert (set(body) - {"name"}).pop() in response.json()["error"]["message"]
    assert not Branch.objects.filter(model=model, name="exp").exists()


def test_it_refuses_a_bad_or_taken_branch_name(api, exp, alice_token):
    assert api("POST", BRANCHES, alice_token, {"name": "a b"}).status_code == 400
    response = api("POST", BRANCHES, alice_token, {"name": "exp"})
    assert response.status_code == 409 and error_code(response) == "conflict"


# Protection


def test_it_takes_only_true_or_false_for_protection(api, model, exp, admin_token):
    events = last_event(model.org).seq
    for value in ("yes", 1, "false", None):
        response = api("PUT", PROTECTION, admin_token, {"protected": value})
        assert response.status_code == 400, value
    assert Branch.objects.get(pk=exp.pk).protected is False
    assert last_event(model.org).seq == events


def test_it_protects_a_branch(api, model, exp, admin_token):
    response = api("PUT", PROTECTION, admin_token, {"protected": True})
    assert response.status_code == 200 and response.json()["protected"] is True
    assert Branch.objects.get(pk=exp.pk).protected is True
    event = last_event(model.org)
    assert (event.verb, event.target_type, event.changes) == (
        "settings.changed",
        "branch",
        {"protected": [False, True]},
    )


def test_it_answers_a_wrong_method_on_protection(api, exp, admin_token):
    assert api("POST", PROTECTION, admin_token, {"protected": True}).status_code == 405


@pytest.mark.parametrize("who", ["alice_token", "carol_token"])
def test_it_lets_only_org_admins_protect(api, exp, request, who):
    response = api("PUT", PROTECTION, request.getfixturevalue(who), {"protected": True})
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert Branch.objects.get(pk=exp.pk).protected is False


def test_it_hides_protection_from_an_outsider(api, exp, mallory_token):
    assert api("PUT", PROTECTION, mallory_token, {"protected": True}).status_code == 404


def test_it_refuses_a_bad_protection_body_or_a_missing_branch(api, exp, admin_token):
    for body in ({"protected": "maybe"}, {"protected": True, "name": "x"}, {}):
        assert api("PUT", PROTECTION, admin_token, body).status_code == 400
    missing = api("PUT", f"{BRANCHES}/nope/protection", admin_token, {"protected": True})
    assert missing.status_code == 404
    main = api("PUT", f"{BRANCHES}/main/protection", admin_token, {"protected": False})
    assert main.status_code == 400 and "always protected" in main.json()["error"]["message"]


# Production from branches


def test_it_refuses_production_from_an_unprotected_branch(api, experimental, alice_token):
    path = f"{MODEL}/versions/{experimental.number}/stage-requests"
    response = api("POST", path, alice_token, {"stage": "production"})
    assert response.status_code == 400
    assert "not protected" in response.json()["error"]["message"]


def test_it_registers_a_version_on_a_branch(api, exp, alice_token):
    response = api("POST", f"{MODEL}/versions", alice_token, {"branch": "exp"})
    assert response.status_code == 201 and response.json()["branch"] == "exp"
    missing = api("POST", f"{MODEL}/versions", alice_token, {"branch": "nope"})
    assert missing.status_code == 400 and "branch nope does not exist" in missing.text


def test_it_reads_the_branch_with_the_model_when_registering(api, exp, alice_token):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = api("POST", f"{MODEL}/versions", alice_token, {"branch": "exp"})
    assert response.status_code == 201 and response.json()["branch"] == "exp"
    reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().startswith("SELECT")
        and ("registry_branch" in q["sql"] or "registry_registeredmodel" in q["sql"])
    ]
    # One read of the model, its org, the caller's access and the branch (version_register),
    # and no second read of the access.
    assert len(reads) == 1 and "registry_branch" in reads[0]
    assert sum("registry_membership" in q["sql"] for q in captured.captured_queries) == 1


# Promotion


def test_it_promotes_a_version(api, model, experimental, alice_token):
    blobs = Blob.objects.count()
    path = f"{MODEL}/versions/{experimental.number}/promote"
    response = api("POST", path, alice_token, {"label": "1.0.0"})
    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["branch"], body["label"]) == (2, "main", "1.0.0")
    assert [p["number"] for p in body["parents"]] == [1]
    assert body["artifacts"] == [
        {"path": "model.bin", "size": 7, "sha256": experimental.artifacts.get().blob_id}
    ]
    assert Blob.objects.count() == blobs
    verbs = ActivityEvent.objects.filter(model_id=model.pk).order_by("-seq")
    assert [e.verb for e in verbs[:2]] == ["branch.promoted", "version.created"]


def test_it_answers_a_wrong_method_on_promote(api, experimental, alice_token):
    path = f"{MODEL}/versions/{experimental.number}/promote"
    assert api("GET", path, alice_token).status_code == 405


def test_it_refuses_promotion_to_a_viewer_and_hides_it_from_an_outsider(
    api, model, experimental, carol_token, mallory_token
):
    path = f"{MODEL}/versions/{experimental.number}/promote"
    assert api("POST", path, carol_token, {}).status_code == 403
    assert api("POST", path, mallory_token, {}).status_code == 404
    assert ModelVersion.objects.filter(model=model).count() == 1


@pytest.mark.parametrize("field", ["branch", "number", "parents", "stage"])
def test_it_refuses_read_only_fields_on_promote(api, model, experimental, alice_token, field):
    path = f"{MODEL}/versions/{experimental.number}/promote"
    response = api("POST", path, alice_token, {field: "main"})
    assert response.status_code == 400 and field in response.json()["error"]["message"]
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_it_refuses_to_promote_a_version_on_main(api, model, alice, alice_token):
    version_create(actor=alice, model=model)
    response = api("POST", f"{MODEL}/versions/1/promote", alice_token, {})
    assert response.status_code == 400 and "already on main" in response.text


# Parents and lineage


@pytest.fixture
def secret_version(acme, admin):
    secret = model_create(actor=admin, org=acme, name="secret-lab", visibility=Visibility.PRIVATE)
    return version_create(actor=admin, model=secret)


def test_it_refuses_a_parent_the_caller_may_not_view(api, model, secret_version, alice_token):
    parents = [{"model": "secret-lab", "number": 1}]
    response = api("POST", f"{MODEL}/versions", alice_token, {"parents": parents})
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_answers_the_lineage(
    api, model, experimental, alice, admin, secret_version, carol_token
):
    promoted = version_create(actor=alice, model=model, parents=[experimental])
    # A child in a model carol may not view: absent for her.
    version_create(actor=admin, model=secret_version.model, parents=[experimental])
    response = api("GET", f"{MODEL}/versions/{experimental.number}/lineage", carol_token)
    assert response.status_code == 200
    body = response.json()
    assert body["version"]["number"] == 1 and body["branch"] == {"name": "exp", "protected": False}
    assert [(c["model"], c["number"], c["branch"]) for c in body["children"]] == [
        ("fraud", promoted.number, "main")
    ]
    assert body["parents"] == []
    assert body["datasets"] == [{"name": "cards", "uri": "s3://d/cards", "version": "3"}]
    assert body["code_version"] == {"repo": "ml/fraud", "commit": "abc123"}
    child = api("GET", f"{MODEL}/versions/{promoted.number}/lineage", carol_token).json()
    assert [p["number"] for p in child["parents"]] == [1]


def test_it_shows_the_admin_every_child_in_the_lineage(
    api, model, experimental, admin, secret_version, admin_token
):
    version_create(actor=admin, model=secret_version.model, parents=[experimental])
    body = api("GET", f"{MODEL}/versions/1/lineage", admin_token).json()
    assert [c["model"] for c in body["children"]] == ["secret-lab"]


def test_it_hides_the_lineage_from_an_outsider(api, experimental, mallory_token, alice_token):
    path = f"{MODEL}/versions/{experimental.number}/lineage"
    assert api("GET", path, mallory_token).status_code == 404
    assert api("POST", path, alice_token, {}).status_code == 405


def test_it_answers_production_after_protection(api, experimental, admin, alice_token):
    branch_set_protection(actor=admin, branch=experimental.branch, protected=True)
    path = f"{MODEL}/versions/{experimental.number}/stage-requests"
    assert api("POST", path, alice_token, {"stage": "production"}).status_code == 201
