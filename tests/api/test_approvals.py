import pytest

from approvals.models import RequestStatus, StageChangeRequest
from approvals.services import request_create
from registry.models import ModelVersion
from tests.api.conftest import error_code, last_event

V1 = "/orgs/acme/models/fraud/versions/1"


@pytest.fixture
def pending(version, alice):
    return request_create(actor=alice, version=version, to_stage="staging", comment="ready")


def test_it_requests_a_stage_change(api, version, alice_token):
    response = api(
        "POST", f"{V1}/stage-requests", alice_token, {"stage": "staging", "comment": "ready"}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["from_stage"], body["to_stage"]) == (
        "pending",
        "unassigned",
        "staging",
    )
    assert StageChangeRequest.objects.get(pk=body["id"]).requester.username == "alice"
    assert last_event(version.model.org).verb == "stage.requested"


def test_it_refuses_a_second_pending_request_with_409(api, pending, alice_token):
    response = api("POST", f"{V1}/stage-requests", alice_token, {"stage": "production"})
    assert response.status_code == 409


def test_it_refuses_a_request_to_a_viewer(api, version, carol_token):
    assert api("POST", f"{V1}/stage-requests", carol_token, {"stage": "staging"}).status_code == 403


def test_it_refuses_a_request_to_an_outsider(api, version, mallory_token):
    response = api("POST", f"{V1}/stage-requests", mallory_token, {"stage": "staging"})
    assert response.status_code == 404


def test_it_refuses_an_unknown_stage(api, version, alice_token):
    assert api("POST", f"{V1}/stage-requests", alice_token, {"stage": "live"}).status_code == 400


@pytest.mark.parametrize("value", ["yes", "true", "1", 1, 0, "", [], {}])
def test_it_takes_only_true_or_false_for_a_flag(api, version, alice_token, value):
    body = {"stage": "staging", "archive_existing": value}
    response = api("POST", f"{V1}/stage-requests", alice_token, body)
    assert response.status_code == 400
    assert "archive_existing must be true or false" in response.json()["error"]["message"]
    assert not StageChangeRequest.objects.exists()


def test_it_lists_a_versions_requests(api, pending, carol_token):
    body = api("GET", f"{V1}/stage-requests", carol_token).json()
    assert [r["id"] for r in body["items"]] == [pending.pk]


def test_it_reads_a_request(api, pending, carol_token, mallory_token):
    assert api("GET", f"/stage-requests/{pending.pk}", carol_token).json()["comment"] == "ready"
    assert api("GET", f"/stage-requests/{pending.pk}", mallory_token).status_code == 404


def test_it_applies_an_approval(api, pending, bob_token):
    response = api("POST", f"/stage-requests/{pending.pk}/approve", bob_token, {"comment": "ok"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "approved"
    assert body["reviews"][0]["reviewer"] == "bob"
    assert ModelVersion.objects.get(pk=pending.version_id).stage == "staging"
    assert last_event(pending.model.org).verb == "stage.applied"


def test_it_refuses_an_approval_by_the_requester(api, pending, alice_token):
    response = api("POST", f"/stage-requests/{pending.pk}/approve", alice_token, {})
    assert response.status_code == 403
    assert StageChangeRequest.objects.get(pk=pending.pk).status == RequestStatus.PENDING


def test_it_refuses_an_approval_to_a_viewer(api, pending, carol_token):
    assert api("POST", f"/stage-requests/{pending.pk}/approve", carol_token, {}).status_code == 403


def test_it_refuses_an_approval_to_an_outsider(api, pending, mallory_token):
    response = api("POST", f"/stage-requests/{pending.pk}/approve", mallory_token, {})
    assert response.status_code == 404


def test_it_rejects(api, pending, bob_token):
    response = api("POST", f"/stage-requests/{pending.pk}/reject", bob_token, {"comment": "no"})
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert ModelVersion.objects.get(pk=pending.version_id).stage == "unassigned"
    assert last_event(pending.model.org).verb == "stage.rejected"


def test_it_refuses_a_rejection_to_a_viewer(api, pending, carol_token):
    assert api("POST", f"/stage-requests/{pending.pk}/reject", carol_token, {}).status_code == 403


def test_it_cancels(api, pending, alice_token):
    response = api("POST", f"/stage-requests/{pending.pk}/cancel", alice_token, {})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert last_event(pending.model.org).verb == "stage.cancelled"


def test_it_refuses_a_cancel_to_a_viewer(api, pending, carol_token):
    assert api("POST", f"/stage-requests/{pending.pk}/cancel", carol_token, {}).status_code == 403


def test_it_refuses_a_cancel_to_an_outsider(api, pending, mallory_token):
    assert api("POST", f"/stage-requests/{pending.pk}/cancel", mallory_token, {}).status_code == 404


def test_it_refuses_reviewing_a_closed_request_with_409(api, pending, bob_token, admin_token):
    api("POST", f"/stage-requests/{pending.pk}/reject", bob_token, {})
    response = api("POST", f"/stage-requests/{pending.pk}/approve", admin_token, {})
    assert response.status_code == 409
    assert error_code(response) == "conflict"


@pytest.mark.parametrize("field", ["status", "requester", "version"])
def test_it_refuses_mass_assignment_on_a_review(api, pending, bob_token, field):
    response = api("POST", f"/stage-requests/{pending.pk}/approve", bob_token, {field: "x"})
    assert response.status_code == 400
    assert StageChangeRequest.objects.get(pk=pending.pk).status == RequestStatus.PENDING


def test_it_answers_a_wrong_method_on_requests(api, pending, bob_token):
    assert api("GET", f"/stage-requests/{pending.pk}/approve", bob_token).status_code == 405
    assert api("DELETE", f"{V1}/stage-requests", bob_token).status_code == 405


def test_it_lists_the_callers_pending_approvals(api, pending, bob_token, alice_token):
    assert [
        r["id"] for r in api("GET", "/orgs/acme/approvals/pending", bob_token).json()["items"]
    ] == [pending.pk]
    # Never one's own request.
    assert api("GET", "/orgs/acme/approvals/pending", alice_token).json()["items"] == []


def test_it_hides_pending_approvals_across_orgs(api, pending, mallory_token):
    assert api("GET", "/orgs/acme/approvals/pending", mallory_token).status_code == 404
    assert api("GET", "/orgs/globex/approvals/pending", mallory_token).json()["items"] == []


def test_it_lists_pending_approvals_in_a_fixed_number_of_queries(
    api, model, alice, bob_token, django_assert_max_num_queries
):
    from registry.services.versions import version_create

    for _ in range(20):
        request_create(
            actor=alice, version=version_create(actor=alice, model=model), to_stage="staging"
        )
    with django_assert_max_num_queries(8):
        response = api("GET", "/orgs/acme/approvals/pending", bob_token)
    assert len(response.json()["items"]) == 20
