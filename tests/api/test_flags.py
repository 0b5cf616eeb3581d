"""Flags over the API (SPEC 3.10, 4.2): raise, list, resolve; 404 before 403."""

import pytest

from registry.models import Flag, LockLevel
from registry.services.flags import flag_raise, flag_resolve
from registry.services.registered_models import model_create
from registry.services.versions import version_create, version_set_lock_level
from tests.api.conftest import error_code, last_event

V1 = "/orgs/acme/models/fraud/versions/1"
FLAGS = f"{V1}/flags"

FLAG_FIELDS = {
    "id", "org", "model", "version", "severity", "summary", "details", "digest", "status",
    "raised_by", "created_at", "resolved_by", "resolved_at", "resolution",
}  # fmt: skip


@pytest.fixture
def flag(version, carol) -> Flag:
    return flag_raise(actor=carol, version=version, severity="high", summary="drift")


# Raise


def test_it_raises_a_flag_as_a_viewer(api, model, version, carol, carol_token):
    body = {"severity": "critical", "summary": "p95 latency 4s", "details": "since 02:00"}
    response = api("POST", FLAGS, carol_token, {**body, "digest": version.digest})
    assert response.status_code == 201
    created = response.json()
    assert set(created) == FLAG_FIELDS
    assert (created["status"], created["raised_by"], created["digest"]) == (
        "open",
        "carol",
        version.digest,
    )
    stored = Flag.objects.get(pk=created["id"])
    assert (stored.severity, stored.summary, stored.details) == (
        "critical",
        "p95 latency 4s",
        "since 02:00",
    )
    event = last_event(model.org)
    assert (event.verb, event.actor, event.target_id) == ("flag.raised", carol, str(stored.pk))
    assert event.data["severity"] == "critical"


def test_it_refuses_a_wrong_method_on_flags(api, version, carol_token, flag):
    assert api("DELETE", FLAGS, carol_token).status_code == 405
    assert api("PUT", FLAGS, carol_token, {}).status_code == 405
    assert api("GET", f"/flags/{flag.pk}/resolve", carol_token).status_code == 405


def test_it_answers_404_to_an_outsider_raising_a_flag(api, version, mallory_token):
    response = api("POST", FLAGS, mallory_token, {"summary": "hi"})
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert not Flag.objects.exists()


def test_it_refuses_a_digest_that_is_not_the_versions(api, version, carol_token):
    wrong = "sha256:" + "f" * 64
    response = api("POST", FLAGS, carol_token, {"summary": "drift", "digest": wrong})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert wrong in message and version.digest in message
    assert not Flag.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"summary": ""},
        {"summary": "x" * 201},
        {"summary": "ok", "severity": "bad"},
        {"summary": "a\x00b"},
        {"details": "no summary"},
        {"summary": "ok", "status": "resolved"},
        {"summary": "ok", "raised_by": "alice"},
        {"summary": "ok", "resolved_at": "2026-01-01T00:00:00Z"},
    ],
)
def test_it_refuses_bad_or_read_only_fields(api, version, carol_token, body):
    response = api("POST", FLAGS, carol_token, body)
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert not Flag.objects.exists()


def test_it_raises_a_flag_on_a_closed_version(api, version, admin, carol_token):
    version_set_lock_level(actor=admin, version=version, level=LockLevel.CLOSED)
    response = api("POST", FLAGS, carol_token, {"summary": "drift", "digest": version.digest})
    assert response.status_code == 201


# List and read


def test_it_lists_flags_by_status(api, version, alice, carol, carol_token, flag):
    second = flag_raise(actor=carol, version=version, severity="low", summary="noise")
    flag_resolve(actor=alice, flag=flag, resolution="retrained")
    every = api("GET", FLAGS, carol_token).json()
    assert [f["id"] for f in every["items"]] == [second.pk, flag.pk]
    opened = api("GET", FLAGS, carol_token, status="open").json()
    assert [f["id"] for f in opened["items"]] == [second.pk]
    resolved = api("GET", FLAGS, carol_token, status="resolved").json()["items"]
    assert [(f["id"], f["resolved_by"], f["resolution"]) for f in resolved] == [
        (flag.pk, "alice", "retrained")
    ]
    assert api("GET", FLAGS, carol_token, status="closed").status_code == 400


def test_it_pages_flags_with_a_cursor(api, version, carol, carol_token):
    raised = [
        flag_raise(actor=carol, version=version, severity="low", summary=f"flag {i}")
        for i in range(5)
    ]
    first = api("GET", FLAGS, carol_token, limit=3).json()
    second = api("GET", FLAGS, carol_token, limit=3, cursor=first["next"]).json()
    assert [f["id"] for f in first["items"] + second["items"]] == [f.pk for f in reversed(raised)]
    assert second["next"] is None


def test_it_hides_flags_from_an_outsider(api, version, flag, mallory_token):
    assert api("GET", FLAGS, mallory_token).status_code == 404
    assert api("GET", f"/flags/{flag.pk}", mallory_token).status_code == 404
    assert api("GET", "/orgs/acme/flags", mallory_token).status_code == 404


def test_it_lists_an_orgs_open_flags_without_private_models(
    api, model, version, admin, alice, carol_token, admin_token, flag
):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    hidden = flag_raise(
        actor=admin, version=version_create(actor=admin, model=secret), severity="low", summary="s"
    )
    closed = flag_raise(actor=admin, version=version, severity="low", summary="done")
    flag_resolve(actor=alice, flag=closed)
    seen = api("GET", "/orgs/acme/flags", carol_token, status="open").json()
    assert [f["id"] for f in seen["items"]] == [flag.pk]
    assert api("GET", f"/flags/{hidden.pk}", carol_token).status_code == 404
    every = api("GET", "/orgs/acme/flags", admin_token, status="open").json()
    assert [f["id"] for f in every["items"]] == [hidden.pk, flag.pk]


# Resolve


def test_it_resolves_a_flag_as_a_writer(api, model, flag, alice, alice_token):
    response = api("POST", f"/flags/{flag.pk}/resolve", alice_token, {"comment": "rolled back"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolved_by"], body["resolution"]) == (
        "resolved",
        "alice",
        "rolled back",
    )
    flag.refresh_from_db()
    assert (flag.resolved_by, flag.resolution) == (alice, "rolled back")
    event = last_event(model.org)
    assert (event.verb, event.actor, event.target_id) == ("flag.resolved", alice, str(flag.pk))


def test_it_accepts_resolution_as_the_field_name(api, flag, alice_token):
    response = api("POST", f"/flags/{flag.pk}/resolve", alice_token, {"resolution": "fixed"})
    assert response.json()["resolution"] == "fixed"
    both = {"comment": "a", "resolution": "b"}
    other = flag_raise(actor=flag.raised_by, version=flag.version, severity="low", summary="x")
    assert api("POST", f"/flags/{other.pk}/resolve", alice_token, both).status_code == 400
    assert Flag.objects.get(pk=other.pk).is_open


def test_it_answers_404_to_an_outsider_resolving(api, flag, mallory_token):
    response = api("POST", f"/flags/{flag.pk}/resolve", mallory_token, {})
    assert response.status_code == 404
    assert Flag.objects.get(pk=flag.pk).is_open


def test_it_answers_403_to_a_viewer_resolving(api, flag, carol_token):
    response = api("POST", f"/flags/{flag.pk}/resolve", carol_token, {"comment": "mine"})
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert Flag.objects.get(pk=flag.pk).is_open


def test_it_answers_409_to_a_second_resolve(api, flag, alice_token, admin_token):
    assert api("POST", f"/flags/{flag.pk}/resolve", alice_token, {}).status_code == 200
    response = api("POST", f"/flags/{flag.pk}/resolve", admin_token, {"comment": "again"})
    assert response.status_code == 409
    assert error_code(response) == "conflict"


def test_it_answers_404_for_a_missing_flag(api, version, alice_token):
    assert api("POST", "/flags/999999/resolve", alice_token, {}).status_code == 404
    assert api("GET", "/flags/999999", alice_token).status_code == 404


@pytest.mark.parametrize("rows", [5, 50])
def test_it_lists_flags_in_a_fixed_number_of_queries(
    api, version, carol, alice, carol_token, rows, django_assert_max_num_queries
):
    for i in range(rows):
        flag = flag_raise(actor=carol, version=version, severity="low", summary=f"flag {i}")
        if i % 2:
            flag_resolve(actor=alice, flag=flag)
    # Token, the version fetched with authorisation (get_version_for_user), one page.
    with django_assert_max_num_queries(13):
        response = api("GET", FLAGS, carol_token, limit=200)
    assert len(response.json()["items"]) == rows
    with django_assert_max_num_queries(8):
        response = api("GET", "/orgs/acme/flags", carol_token, limit=200)
    assert len(response.json()["items"]) == rows
