"""The review request that moves a protected alias (SPEC 3.4), beyond tests/api/
test_alias_refs.py: refusals that change nothing, another org's model, a read-only token,
and its place in the review queue and the version's list beside stage requests."""

import io

import pytest

from approvals.models import StageChangeRequest
from approvals.services import request_create
from registry.models import ActivityEvent, Alias, TokenScope
from registry.services.aliases import alias_protect, alias_set
from registry.services.registered_models import model_create
from registry.services.tokens import token_create
from registry.services.versions import version_create
from tests.api.conftest import error_code

pytestmark = pytest.mark.django_db

REQUESTS = "/orgs/acme/models/fraud/aliases/champion/requests"


@pytest.fixture
def champion(version, admin, alice):
    """fraud@champion on v1, protected, and a v2 to move it to."""
    version_create(actor=alice, model=version.model, artifacts={"m.bin": io.BytesIO(b"2")})
    alias_set(actor=admin, model=version.model, name="champion", version=version)
    return alias_protect(actor=admin, model=version.model, name="champion")


def _state() -> tuple:
    return (
        StageChangeRequest.objects.count(),
        ActivityEvent.objects.count(),
        list(Alias.objects.values_list("name", "version__number")),
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"version": 9}, 404, "version 9 of model fraud not found"),
        ({"version": 0}, 400, "version"),
        ({"version": "two"}, 400, "version"),
        ({"version": 2, "comment": 5}, 400, "comment"),
        ({"version": 2, "stage": "production"}, 400, "stage cannot be set"),
        ({"version": 1}, 400, "alias champion already points at version 1"),
    ],
)
def test_it_refuses_a_bad_alias_request_and_changes_nothing(
    api, champion, alice_token, body, status, message
):
    before = _state()
    response = api("POST", REQUESTS, alice_token, body)
    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]
    assert _state() == before


def test_it_refuses_a_bad_alias_name_and_changes_nothing(api, champion, alice_token):
    before = _state()
    response = api(
        "POST", "/orgs/acme/models/fraud/aliases/42/requests", alice_token, {"version": 2}
    )
    assert response.status_code == 400
    assert "is a number" in response.json()["error"]["message"]
    assert _state() == before


def test_it_hides_another_orgs_model_from_alias_requests(
    api, champion, globex, mallory, alice_token
):
    found = model_create(actor=mallory, org=globex, name="fraud")
    version_create(actor=mallory, model=found)
    before = _state()
    path = "/orgs/globex/models/fraud/aliases/champion/requests"
    response = api("POST", path, alice_token, {"version": 1})
    assert (response.status_code, error_code(response)) == (404, "not_found")
    assert _state() == before


def test_it_refuses_an_alias_request_with_a_read_only_token(api, champion, alice):
    token = token_create(actor=alice, user=alice, name="ro", scope=TokenScope.READ)[1]
    before = _state()
    response = api("POST", REQUESTS, token, {"version": 2})
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert "read-only" in response.json()["error"]["message"]
    assert _state() == before


def test_it_queues_alias_and_stage_requests_together_for_review(
    api, champion, version, alice, alice_token, bob_token
):
    stage = request_create(actor=alice, version=version, to_stage="staging")
    alias = api("POST", REQUESTS, alice_token, {"version": 2}).json()
    pending = api("GET", "/orgs/acme/approvals/pending", bob_token).json()["items"]
    assert [(r["id"], r["kind"]) for r in pending] == [
        (alias["id"], "alias_move"),
        (stage.pk, "stage"),
    ]
    one = api("GET", f"/stage-requests/{alias['id']}", bob_token).json()
    assert (one["alias"], one["version"], one["status"]) == ("champion", 2, "pending")
