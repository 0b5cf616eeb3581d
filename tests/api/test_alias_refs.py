"""`model@alias` wherever the API names a version, and the review request that moves a
protected alias (SPEC 2, 3.4)."""

import io

import pytest

from approvals.models import RequestKind, RequestStatus, StageChangeRequest
from approvals.services import request_approve
from registry.models import Alias, ModelVersion
from registry.services.aliases import alias_protect, alias_set
from registry.services.versions import version_create
from tests.api.conftest import error_code, last_event

MODEL = "/orgs/acme/models/fraud"
REQUESTS = f"{MODEL}/aliases/champion/requests"


@pytest.fixture
def v2(version, alice):
    return version_create(
        actor=alice, model=version.model, artifacts={"model.bin": io.BytesIO(b"v2 weights")}
    )


@pytest.fixture
def champion(version, admin):
    """fraud@champion on v1, protected."""
    alias_set(actor=admin, model=version.model, name="champion", version=version)
    return alias_protect(actor=admin, model=version.model, name="champion")


# Resolving


def test_it_reads_the_version_an_alias_names(api, version, v2, alice, carol_token):
    alias_set(actor=alice, model=version.model, name="candidate", version=v2)
    response = api("GET", f"{MODEL}/versions/@candidate", carol_token)
    assert response.status_code == 200
    body = response.json()
    assert (body["number"], body["digest"]) == (2, v2.digest)
    assert body == api("GET", f"{MODEL}/versions/2", carol_token).json()


def test_it_answers_404_for_an_unknown_alias_and_to_an_outsider(
    api, champion, carol_token, mallory_token
):
    missing = api("GET", f"{MODEL}/versions/@nobody", carol_token)
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    hidden = api("GET", f"{MODEL}/versions/@champion", mallory_token)
    assert hidden.status_code == 404
    assert "champion" not in hidden.json()["error"]["message"]  # as for any unknown model
    assert (
        api("GET", f"{MODEL}/versions/@champion/artifacts/model.bin", mallory_token).status_code
        == 404
    )


def test_it_redirects_a_path_under_an_alias_to_the_versions_number(api, champion, carol_token):
    response = api("GET", f"{MODEL}/versions/@champion/artifacts/model.bin", carol_token)
    assert response.status_code == 307
    assert response["Location"] == f"/api/v1{MODEL}/versions/1/artifacts/model.bin"
    download = api("GET", response["Location"].removeprefix("/api/v1"), carol_token)
    assert b"".join(download.streaming_content) == b"weights"


def test_it_keeps_the_query_and_the_method_in_the_redirect(api, champion, alice_token):
    listed = api("GET", f"{MODEL}/versions/@champion/stage-requests", alice_token, limit=5)
    assert listed["Location"] == f"/api/v1{MODEL}/versions/1/stage-requests?limit=5"
    posted = api(
        "POST", f"{MODEL}/versions/@champion/stage-requests", alice_token, {"stage": "staging"}
    )
    assert posted.status_code == 307  # the client sends the same POST to the Location
    assert not StageChangeRequest.objects.exists()


def test_it_registers_a_version_whose_parent_is_named_by_an_alias(
    api, version, v2, champion, alice_token
):
    response = api("POST", f"{MODEL}/versions", alice_token, {"parents": ["fraud@champion"]})
    assert response.status_code == 201
    assert [p["number"] for p in response.json()["parents"]] == [1]
    stored = ModelVersion.objects.get(model=version.model, number=3)
    assert list(stored.parents.values_list("number", flat=True)) == [1]


@pytest.mark.parametrize(
    ("parent", "status"),
    [("fraud@nobody", 404), ("fraud", 400), ("other@champion", 404)],
)
def test_it_refuses_a_parent_it_cannot_resolve(api, champion, alice_token, parent, status):
    response = api("POST", f"{MODEL}/versions", alice_token, {"parents": [parent]})
    assert response.status_code == status
    assert ModelVersion.objects.count() == 1


# Requesting a protected alias's move or removal


def test_it_requests_the_move_of_a_protected_alias(api, champion, v2, alice_token, bob_token):
    response = api("POST", REQUESTS, alice_token, {"version": 2, "comment": "v2 wins the A/B"})
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["alias"], body["version"], body["status"]) == (
        "alias_move",
        "champion",
        2,
        "pending",
    )
    event = last_event(champion.model.org)
    assert (event.verb, event.actor_name, event.data["alias"]) == (
        "stage.requested",
        "alice",
        "champion",
    )
    assert Alias.objects.get(name="champion").version.number == 1  # not before review
    pending = api("GET", "/orgs/acme/approvals/pending", bob_token).json()["items"]
    assert [(r["id"], r["kind"]) for r in pending] == [(body["id"], "alias_move")]
    approved = api("POST", f"/stage-requests/{body['id']}/approve", bob_token, {"comment": "ok"})
    assert approved.json()["status"] == "approved"
    assert Alias.objects.get(name="champion").version.number == 2


def test_it_requests_the_removal_of_a_protected_alias(api, champion, alice_token):
    response = api("POST", REQUESTS, alice_token, {"version": None})
    assert response.status_code == 201
    assert (response.json()["kind"], response.json()["version"]) == ("alias_remove", 1)
    request = StageChangeRequest.objects.get()
    assert (request.kind, request.status) == (RequestKind.ALIAS_REMOVE, RequestStatus.PENDING)


def test_it_refuses_a_second_pending_request_for_an_alias(api, champion, v2, alice_token):
    assert api("POST", REQUESTS, alice_token, {"version": 2}).status_code == 201
    again = api("POST", REQUESTS, alice_token, {"version": None})
    assert (again.status_code, error_code(again)) == (409, "conflict")


def test_it_refuses_an_alias_request_to_a_viewer(api, champion, v2, carol_token):
    response = api("POST", REQUESTS, carol_token, {"version": 2})
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert not StageChangeRequest.objects.exists()


def test_it_hides_an_alias_request_from_an_outsider(api, champion, v2, mallory_token):
    assert api("POST", REQUESTS, mallory_token, {"version": 2}).status_code == 404
    assert not StageChangeRequest.objects.exists()


def test_it_answers_a_wrong_method_on_alias_requests(api, champion, alice_token):
    assert api("GET", REQUESTS, alice_token).status_code == 405


def test_it_needs_the_version_field_of_an_alias_request(api, champion, alice_token):
    response = api("POST", REQUESTS, alice_token, {"comment": "which one?"})
    assert response.status_code == 400
    assert "version" in response.json()["error"]["message"]


def test_it_resolves_the_alias_where_an_approved_request_moved_it(
    api, champion, v2, alice, bob, alice_token
):
    created = api("POST", REQUESTS, alice_token, {"version": 2}).json()
    request_approve(actor=bob, request=StageChangeRequest.objects.get(pk=created["id"]))
    assert api("GET", f"{MODEL}/versions/@champion", alice_token).json()["number"] == 2
