import hashlib

import pytest

from approvals.services import request_create
from registry.models import Alias, ModelVersion
from registry.services.aliases import alias_protect, alias_set
from registry.services.comments import comment_add
from registry.services.versions import version_create, version_set_lock_level
from tests.api.conftest import error_code, last_event

VERSIONS = "/orgs/acme/models/fraud/versions"
V1 = f"{VERSIONS}/1"

VERSION_FIELDS = {
    "id", "model", "number", "label", "branch", "stage", "lock_level", "digest", "description",
    "readme", "tags", "framework", "flavor", "params", "metrics", "environment", "datasets",
    "code_version", "input_schema", "output_schema", "experiment_id", "source_run", "parents",
    "artifacts", "created_by", "created_at", "pending_request",
}  # fmt: skip


def test_it_registers_a_version(api, model, alice_token):
    response = api(
        "POST",
        VERSIONS,
        alice_token,
        {"label": "1.0.0", "lock_level": "redact", "params": {"lr": 0.1}, "framework": "sklearn"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == VERSION_FIELDS
    assert (body["number"], body["lock_level"], body["stage"]) == (1, "redact", "unassigned")
    stored = ModelVersion.objects.get(model=model, number=1)
    assert stored.params == {"lr": 0.1}
    assert body["digest"] == stored.digest
    assert last_event(model.org).verb == "version.created"


def test_it_registers_a_version_with_parents(api, model, version, alice_token):
    response = api("POST", VERSIONS, alice_token, {"parents": [{"model": "fraud", "number": 1}]})
    assert response.status_code == 201
    assert [p["number"] for p in response.json()["parents"]] == [1]


def test_it_answers_a_registration_with_what_a_read_returns(
    api, model, version, alice, alice_token
):
    # The create response is rendered from the new row in memory, not read back: it must say
    # exactly what a GET says, parents in the same order included.
    version_create(actor=alice, model=model, label="0.2.0")
    parents = [{"model": "fraud", "number": 1}, {"model": "fraud", "number": 2}]
    created = api(
        "POST",
        VERSIONS,
        alice_token,
        {"parents": parents, "tags": {"team": "risk"}, "datasets": [{"name": "cards"}]},
    )
    assert created.status_code == 201
    body = created.json()
    assert [p["number"] for p in body["parents"]] == [2, 1]
    assert body == api("GET", f"{VERSIONS}/{body['number']}", alice_token).json()


def test_it_refuses_a_version_to_a_viewer(api, model, carol_token):
    response = api("POST", VERSIONS, carol_token, {})
    assert response.status_code == 403
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_refuses_a_version_to_an_outsider(api, model, mallory_token):
    assert api("POST", VERSIONS, mallory_token, {}).status_code == 404


@pytest.mark.parametrize("field", ["stage", "digest", "number", "created_by", "id", "model"])
def test_it_refuses_read_only_fields_on_register(api, model, alice_token, field):
    response = api("POST", VERSIONS, alice_token, {field: "production"})
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_refuses_an_invalid_ingredient(api, model, alice_token):
    response = api("POST", VERSIONS, alice_token, {"metrics": {"auc": "high"}})
    assert response.status_code == 400
    assert error_code(response) == "invalid"


def test_it_lists_versions_newest_first(api, model, version, alice, carol_token):
    version_create(actor=alice, model=model)
    body = api("GET", VERSIONS, carol_token).json()
    assert [v["number"] for v in body["items"]] == [2, 1]
    assert body["items"][1]["artifacts"][0]["path"] == "model.bin"


def test_it_lists_versions_matching_a_query(api, model, version, alice, carol_token):
    version_create(actor=alice, model=model, metrics={"auc": 0.5})
    body = api("GET", VERSIONS, carol_token, q="metrics.auc > 0.8").json()
    assert [v["number"] for v in body["items"]] == [1]


@pytest.mark.parametrize(
    "query", [{}, {"q": "stage == unassigned"}, {"stage": "unassigned"}, {"q": "number == 1"}]
)
def test_it_hides_versions_from_an_outsider(api, model, version, mallory_token, query):
    """Whether the page is read with the model (no query, plain equalities) or after it,
    an outsider finds what they find for a model that does not exist."""
    hidden = api("GET", VERSIONS, mallory_token, **query)
    absent = api("GET", VERSIONS.replace("fraud", "nothing"), mallory_token, **query)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"]["message"] == "model fraud not found"
    assert absent.json()["error"]["message"] == "model nothing not found"


@pytest.mark.parametrize("rows", [5, 50])
def test_it_lists_versions_in_a_fixed_number_of_queries(
    api, model, alice, bob, alice_token, rows, django_assert_max_num_queries
):
    import io

    for i in range(rows):
        v = version_create(
            actor=alice, model=model, artifacts={"a.bin": io.BytesIO(str(i).encode())}
        )
        if i % 2:
            request_create(actor=alice, version=v, to_stage="staging")
    with django_assert_max_num_queries(12):
        response = api("GET", VERSIONS, alice_token, limit=200)
    assert len(response.json()["items"]) == rows


def test_it_reads_a_version(api, version, carol_token):
    response = api("GET", V1, carol_token)
    assert response.status_code == 200
    body = response.json()
    assert body["artifacts"] == [
        {
            "path": "model.bin",
            "size": 7,
            "sha256": hashlib.sha256(b"weights").hexdigest(),
        }
    ]
    assert body["pending_request"] is None


def test_it_shows_the_pending_request(api, version, alice, carol_token):
    request = request_create(actor=alice, version=version, to_stage="staging")
    pending = api("GET", V1, carol_token).json()["pending_request"]
    assert pending["id"] == request.pk
    assert pending["to_stage"] == "staging"


def test_it_answers_404_for_a_missing_version(api, model, alice_token):
    assert api("GET", f"{VERSIONS}/99", alice_token).status_code == 404


def test_it_answers_400_for_a_number_that_is_not_one(api, model, alice_token):
    response = api("GET", f"{VERSIONS}/abc", alice_token)
    assert response.status_code == 400
    assert error_code(response) == "invalid"


def test_it_updates_a_version(api, version, alice_token):
    response = api("PATCH", V1, alice_token, {"description": "Better", "params": {"lr": 0.2}})
    assert response.status_code == 200
    version.refresh_from_db()
    assert version.params == {"lr": 0.2}
    event = last_event(version.model.org)
    assert event.verb == "version.updated"
    assert event.changes["description"] == ["", "Better"]


def test_it_refuses_a_version_update_to_a_viewer(api, version, carol_token):
    assert api("PATCH", V1, carol_token, {"description": "x"}).status_code == 403


def test_it_refuses_a_version_update_to_an_outsider(api, version, mallory_token):
    assert api("PATCH", V1, mallory_token, {"description": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stage", "production"),
        ("lock_level", "open"),
        ("digest", "sha256:" + "0" * 64),
        ("created_by", "mallory"),
        ("org", "globex"),
        ("number", 7),
        ("branch", "other"),
    ],
)
def test_it_refuses_mass_assignment_on_a_version(api, version, admin_token, field, value):
    before = ModelVersion.objects.get(pk=version.pk)
    response = api("PATCH", V1, admin_token, {field: value})
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
    after = ModelVersion.objects.get(pk=version.pk)
    assert (after.stage, after.lock_level, after.digest) == (
        before.stage,
        before.lock_level,
        before.digest,
    )


def test_it_refuses_an_ingredient_change_on_a_closed_version_with_423(
    api, version, alice, admin_token
):
    version_set_lock_level(actor=alice, version=version, level="closed")
    response = api("PATCH", V1, admin_token, {"params": {"lr": 9}})
    assert response.status_code == 423
    assert error_code(response) == "locked"
    version.refresh_from_db()
    assert version.params == {"lr": 0.1}


def test_it_edits_free_metadata_of_a_closed_version(api, version, alice, alice_token):
    version_set_lock_level(actor=alice, version=version, level="closed")
    response = api("PATCH", V1, alice_token, {"description": "still editable"})
    assert response.status_code == 200


def test_it_deletes_a_version(api, version, alice_token):
    response = api("DELETE", V1, alice_token)
    assert response.status_code == 204
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    assert last_event(version.model.org).verb == "version.deleted"


def test_it_refuses_deleting_a_closed_version(api, version, alice, admin_token):
    version_set_lock_level(actor=alice, version=version, level="closed")
    assert api("DELETE", V1, admin_token).status_code == 423
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_it_refuses_a_version_deletion_to_a_viewer(api, version, carol_token):
    assert api("DELETE", V1, carol_token).status_code == 403


def test_it_refuses_a_version_deletion_to_an_outsider(api, version, mallory_token):
    assert api("DELETE", V1, mallory_token).status_code == 404


def test_it_answers_a_wrong_method_on_a_version(api, version, alice_token):
    assert api("POST", V1, alice_token, {}).status_code == 405
    assert api("DELETE", VERSIONS, alice_token).status_code == 405


# Lock


def test_it_raises_the_lock_level(api, version, alice_token):
    response = api("PUT", f"{V1}/lock", alice_token, {"level": "closed"})
    assert response.status_code == 200
    assert response.json()["lock_level"] == "closed"
    event = last_event(version.model.org)
    assert (event.verb, event.changes) == ("lock.raised", {"lock_level": ["open", "closed"]})


def test_it_refuses_lowering_to_a_non_admin(api, version, alice, alice_token):
    version_set_lock_level(actor=alice, version=version, level="redact")
    assert api("PUT", f"{V1}/lock", alice_token, {"level": "open"}).status_code == 403


def test_it_refuses_a_lock_change_to_a_viewer(api, version, carol_token):
    assert api("PUT", f"{V1}/lock", carol_token, {"level": "closed"}).status_code == 403


def test_it_refuses_a_lock_change_to_an_outsider(api, version, mallory_token):
    assert api("PUT", f"{V1}/lock", mallory_token, {"level": "closed"}).status_code == 404


def test_it_refuses_an_unknown_lock_level(api, version, alice_token):
    assert api("PUT", f"{V1}/lock", alice_token, {"level": "sealed"}).status_code == 400


def test_it_answers_a_wrong_method_on_lock(api, version, alice_token):
    assert api("POST", f"{V1}/lock", alice_token, {"level": "closed"}).status_code == 405


# Aliases

ALIASES = "/orgs/acme/models/fraud/aliases"


def test_it_sets_an_alias(api, version, alice_token):
    response = api("PUT", f"{ALIASES}/champion", alice_token, {"version": 1})
    assert response.status_code == 200
    assert response.json() == {"name": "champion", "version": 1, "protected": False}
    assert Alias.objects.get(model=version.model, name="champion").version_id == version.pk
    assert last_event(version.model.org).verb == "alias.set"


def test_it_resolves_an_alias(api, version, alice, carol_token):
    alias_set(actor=alice, model=version.model, name="champion", version=version)
    response = api("GET", f"{ALIASES}/champion", carol_token)
    assert response.status_code == 200
    assert response.json()["number"] == 1
    listed = api("GET", ALIASES, carol_token).json()
    assert listed == [{"name": "champion", "version": 1, "protected": False}]


def test_it_tells_a_writer_to_request_a_protected_alias(api, version, alice, admin, alice_token):
    v2 = version_create(actor=alice, model=version.model)
    alias_set(actor=admin, model=version.model, name="champion", version=version)
    alias_protect(actor=admin, model=version.model, name="champion")
    response = api("PUT", f"{ALIASES}/champion", alice_token, {"version": v2.number})
    assert response.status_code == 403
    assert "request" in response.json()["error"]["message"]
    assert Alias.objects.get(name="champion").version_id == version.pk


def test_it_refuses_an_alias_to_a_viewer(api, version, carol_token):
    assert api("PUT", f"{ALIASES}/champion", carol_token, {"version": 1}).status_code == 403


def test_it_refuses_an_alias_to_an_outsider(api, version, mallory_token):
    assert api("PUT", f"{ALIASES}/champion", mallory_token, {"version": 1}).status_code == 404


def test_it_removes_an_alias(api, version, alice, alice_token):
    alias_set(actor=alice, model=version.model, name="champion", version=version)
    assert api("DELETE", f"{ALIASES}/champion", alice_token).status_code == 204
    assert not Alias.objects.filter(name="champion").exists()
    assert last_event(version.model.org).verb == "alias.removed"


def test_it_refuses_an_alias_removal_to_a_viewer(api, version, alice, carol_token):
    alias_set(actor=alice, model=version.model, name="champion", version=version)
    assert api("DELETE", f"{ALIASES}/champion", carol_token).status_code == 403


def test_it_answers_a_wrong_method_on_an_alias(api, version, alice_token):
    assert api("POST", f"{ALIASES}/champion", alice_token, {"version": 1}).status_code == 405


# State


def test_it_answers_the_state_at_a_time(api, version, alice, carol_token):
    from django.utils import timezone

    before = timezone.now()
    alias_set(actor=alice, model=version.model, name="champion", version=version)
    now = api("GET", "/orgs/acme/models/fraud/state", carol_token).json()
    assert now["versions"] == {"1": "unassigned"}
    assert now["aliases"] == {"champion": 1}
    past = api("GET", "/orgs/acme/models/fraud/state", carol_token, at=before.isoformat()).json()
    assert past["aliases"] == {}


def test_it_hides_the_state_from_an_outsider(api, version, mallory_token):
    assert api("GET", "/orgs/acme/models/fraud/state", mallory_token).status_code == 404


def test_it_refuses_a_naive_time(api, version, carol_token):
    response = api("GET", "/orgs/acme/models/fraud/state", carol_token, at="2026-01-01T00:00:00")
    assert response.status_code == 400


# Comments


def test_it_adds_a_model_comment(api, model, carol_token):
    response = api("POST", "/orgs/acme/models/fraud/comments", carol_token, {"body": "Nice"})
    assert response.status_code == 201
    assert response.json()["author"] == "carol"
    assert last_event(model.org).verb == "comment.added"
    listed = api("GET", "/orgs/acme/models/fraud/comments", carol_token).json()["items"]
    assert [c["body"] for c in listed] == ["Nice"]


def test_it_adds_a_version_comment(api, version, alice, carol_token):
    comment_add(actor=alice, model=version.model, body="on the model")
    response = api("POST", f"{V1}/comments", carol_token, {"body": "On v1"})
    assert response.status_code == 201
    assert response.json()["version"] == 1
    listed = api("GET", f"{V1}/comments", carol_token).json()["items"]
    assert [c["body"] for c in listed] == ["On v1"]


def test_it_refuses_comments_to_an_outsider(api, version, mallory_token):
    assert api("POST", f"{V1}/comments", mallory_token, {"body": "x"}).status_code == 404
    assert api("GET", "/orgs/acme/models/fraud/comments", mallory_token).status_code == 404


def test_it_refuses_an_empty_comment(api, version, carol_token):
    assert api("POST", f"{V1}/comments", carol_token, {"body": "  "}).status_code == 400


def test_it_answers_a_wrong_method_on_comments(api, version, carol_token):
    assert api("DELETE", f"{V1}/comments", carol_token).status_code == 405


def test_the_stage_parameter_and_a_stage_in_the_query_must_both_hold(
    api, model, alice, carol_token
):
    """The page read in one statement takes the stage of the parameter and of the query
    together: the same stage narrows, two different ones find nothing."""
    first = version_create(actor=alice, model=model)
    version_create(actor=alice, model=model)
    ModelVersion.objects.filter(pk=first.pk).update(stage="staging")

    def numbers(**params) -> list[int]:
        answer = api("GET", VERSIONS, carol_token, **params)
        assert answer.status_code == 200, answer.content
        return [item["number"] for item in answer.json()["items"]]

    assert numbers(stage="staging") == [first.number]
    assert numbers(stage="staging", q="stage == staging") == [first.number]
    assert numbers(stage="staging", q="stage == production") == []
    assert numbers(stage="unassigned", q="lock_level == open") == [first.number + 1]
