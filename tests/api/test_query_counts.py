"""List endpoints cost the same number of queries whatever their number of rows (the
same bound at 5 and 50 rows; most of it is the authorising fetch of the version)."""

import io

import pytest

from approvals.services import request_approve, request_create
from registry.services.artifacts import artifact_put
from registry.services.comments import comment_add

V1 = "/orgs/acme/models/fraud/versions/1"


def _comments(version, alice, bob, rows):
    for i in range(rows):
        comment_add(actor=alice, model=version.model, version=version, body=f"comment {i}")
        comment_add(actor=bob, model=version.model, body=f"on the model {i}")


def _artifacts(version, alice, bob, rows):
    for i in range(rows):
        artifact_put(
            actor=alice, version=version, path=f"part-{i:03}.bin", source=io.BytesIO(b"%d" % i)
        )


def _requests(version, alice, bob, rows):
    stages = ["development", "staging"]
    for i in range(rows):
        request = request_create(actor=alice, version=version, to_stage=stages[i % 2])
        request_approve(actor=bob, request=request, comment=f"ok {i}")


@pytest.mark.parametrize("rows", [5, 50])
@pytest.mark.parametrize(
    ("path", "build"),
    [
        (f"{V1}/comments", _comments),
        ("/orgs/acme/models/fraud/comments", _comments),
        (f"{V1}/artifacts", _artifacts),
        (f"{V1}/stage-requests", _requests),
    ],
)
def test_it_lists_in_a_fixed_number_of_queries(
    api, version, alice, bob, carol_token, rows, path, build, django_assert_max_num_queries
):
    build(version, alice, bob, rows)
    with django_assert_max_num_queries(16):
        response = api("GET", path, carol_token, limit=200)
    assert response.status_code == 200
    assert len(response.json()["items"]) >= rows


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        # token; the org with the caller's role (one query), which the filter that keeps
        # only the test that role needs (visible_in) takes as read; the page
        ("/orgs/acme/models", 3),
        # token; the org with the caller's role; the page's ids; its versions with their
        # artifacts, parents and pending requests
        ("/orgs/acme/versions", 4),
    ],
)
def test_an_org_level_request_reads_the_org_and_the_callers_role_at_once(
    api, version, carol_token, path, queries, django_assert_num_queries
):
    api("GET", path, carol_token)  # the token's first use also notes its last use
    with django_assert_num_queries(queries):
        response = api("GET", path, carol_token)
    assert response.status_code == 200
    assert response.json()["items"]


@pytest.mark.parametrize("query", [{}, {"q": "stage == production"}, {"stage": "staging"}])
def test_a_models_versions_are_read_with_the_model(
    api, version, carol_token, query, django_assert_num_queries
):
    """The versions of one model (what CI asks for its production version): the token, then
    the model with the caller's access and its page in one statement (on SQLite, which has
    no LATERAL join, the model and then its page)."""
    from django.db import connection

    path = "/orgs/acme/models/fraud/versions"
    api("GET", path, carol_token)  # the token's first use also notes its last use
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 3):
        response = api("GET", path, carol_token, **query)
    assert response.status_code == 200


@pytest.mark.parametrize("ref", ["versions/1", "aliases/champion", "versions/@champion"])
def test_a_version_is_read_by_its_number_or_its_alias_in_two_statements(
    api, version, alice_token, carol_token, ref, django_assert_num_queries
):
    """`fraud@champion` (what a deployment resolves) is read as `fraud` version 1 is: the
    token; then the version, found by its number or by its alias, with its model and the
    caller's access beside what it shows (artifacts, parents, pending requests), in one
    statement (on SQLite, which has no LATERAL join, the version and then what it shows)."""
    from django.db import connection

    fraud = "/orgs/acme/models/fraud"
    assert api("PUT", f"{fraud}/aliases/champion", alice_token, {"version": 1}).status_code == 200
    api("GET", f"{fraud}/{ref}", carol_token)  # the token's first use also notes its last use
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 3):
        response = api("GET", f"{fraud}/{ref}", carol_token)
    assert response.status_code == 200
    assert response.json()["number"] == 1


# Statements that are not a transaction's own (BEGIN, COMMIT, savepoints: SQLite and
# PostgreSQL differ there).
_TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _statements(captured) -> list[str]:
    statements = [q["sql"].strip() for q in captured]
    return [s for s in statements if not s.upper().startswith(_TRANSACTION)]


def test_the_governed_writes_take_a_fixed_number_of_statements(api, model, alice_token, bob_token):
    """A registration's calls, each after its token's first use. Each count is written out
    below; one that grows is a new statement on the path every CI registration takes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fraud = "/orgs/acme/models/fraud"
    api("GET", fraud, alice_token)
    api("GET", fraud, bob_token)
    with CaptureQueriesContext(connection) as created:
        made = api("POST", f"{fraud}/versions", alice_token, {"tags": {"team": "risk"}})
    assert made.status_code == 201
    number = made.json()["number"]
    with CaptureQueriesContext(connection) as requested:
        asked = api(
            "POST", f"{fraud}/versions/{number}/stage-requests", alice_token, {"stage": "staging"}
        )
    assert asked.status_code == 201
    with CaptureQueriesContext(connection) as approved:
        done = api("POST", f"/stage-requests/{asked.json()['id']}/approve", bob_token, {})
    assert done.json()["status"] == "approved"
    # (A test's transaction never commits: what runs after commit is not counted here.)
    # token; model, branch and access (read once: version_register); the number; the
    # version and its history row; the chain (head, event, advance)
    assert len(_statements(created)) == 8, _statements(created)
    # token; version and access; the transition lock; the version again with the access
    # as stored; no pending request; the version's model; the request and its history row;
    # the chain (3) (a new request has no reviews to read for the answer)
    assert len(_statements(requested)) == 11, _statements(requested)
    # token; the request's model and org with the access; the transition lock; the request
    # locked; its reviews; the review and its history row; the request closed and its
    # history row; the version locked, moved and its history row (no other version moved,
    # so no stale request to look for); two events (3 each); the answer (its reviews)
    assert len(_statements(approved)) == 19, _statements(approved)
    # No savepoint inside the service's transaction (in a test, that transaction is one).
    for captured in (created, requested, approved):
        assert sum(q["sql"].upper().startswith("SAVEPOINT") for q in captured) <= 1


def test_setting_an_alias_takes_a_fixed_number_of_statements(api, model, alice_token):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fraud = "/orgs/acme/models/fraud"
    made = api("POST", f"{fraud}/versions", alice_token, {})
    number = made.json()["number"]
    with CaptureQueriesContext(connection) as captured:
        done = api("PUT", f"{fraud}/aliases/champion", alice_token, {"version": number})
    assert done.status_code == 200
    # token; version and access (the view's check); the version again with the access as
    # stored (the service's); the transition lock; no alias yet; the version's model (the
    # alias row's guard); the alias and its history row; the chain (3)
    assert len(_statements(captured)) == 11, _statements(captured)
