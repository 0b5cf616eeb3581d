"""The API of an organization's admins (SPEC 4.6): settings, members, invitations, teams,
service accounts and their tokens. Each endpoint answers the quartet (anonymous 401,
outsider 404, member 403, admin 2xx), and another org's members, teams and accounts are 404
even to an admin."""

import pytest
from django.contrib.auth import get_user_model

from registry.models import ActivityEvent, ApiToken, Membership, Team
from registry.services.members import member_invite, service_account_create
from registry.services.orgs import membership_set, team_create, team_set_members
from registry.services.tokens import token_authenticate, token_create
from tests.api.conftest import error_code, last_event

User = get_user_model()


@pytest.fixture
def ops(acme, admin, alice):
    team = team_create(actor=admin, org=acme, name="ops")
    team_set_members(actor=admin, team=team, users=[alice])
    return team


@pytest.fixture
def ci(acme, admin):
    account = service_account_create(actor=admin, org=acme, name="ci")
    token, _ = token_create(actor=admin, user=account.user, name="gha")
    return token


# (method, path, body, status of the admin's call)
ENDPOINTS = [
    ("PATCH", "/orgs/acme", {"required_approvals": 2}, 200),
    ("GET", "/orgs/acme/members", None, 200),
    ("POST", "/orgs/acme/members", {"username": "dave"}, 201),
    ("POST", "/orgs/acme/invitations", {"username": "wanda", "email": "w@example.com"}, 201),
    ("GET", "/orgs/acme/members/bob", None, 200),
    ("PATCH", "/orgs/acme/members/bob", {"role": "admin"}, 200),
    ("DELETE", "/orgs/acme/members/bob", None, 204),
    ("POST", "/orgs/acme/members/bob/deactivate", None, 200),
    ("POST", "/orgs/acme/members/bob/reactivate", None, 200),
    ("POST", "/orgs/acme/members/invitee/invitation", None, 200),
    ("GET", "/orgs/acme/teams", None, 200),
    ("POST", "/orgs/acme/teams", {"name": "risk"}, 201),
    ("GET", "/orgs/acme/teams/{team}", None, 200),
    ("PUT", "/orgs/acme/teams/{team}/members", {"members": ["bob"]}, 200),
    ("DELETE", "/orgs/acme/teams/{team}", None, 204),
    ("GET", "/orgs/acme/service-accounts", None, 200),
    ("POST", "/orgs/acme/service-accounts", {"name": "nightly"}, 201),
    ("GET", "/orgs/acme/service-accounts/ci", None, 200),
    ("GET", "/orgs/acme/service-accounts/ci/tokens", None, 200),
    ("POST", "/orgs/acme/service-accounts/ci/tokens", {"name": "x"}, 201),
    ("DELETE", "/orgs/acme/service-accounts/ci/tokens/{token}", None, 204),
]
WRONG_METHOD = {
    "/orgs/acme": "DELETE",
    "/orgs/acme/members": "DELETE",
    "/orgs/acme/invitations": "GET",
    "/orgs/acme/members/bob": "PUT",
    "/orgs/acme/members/bob/deactivate": "GET",
    "/orgs/acme/members/bob/reactivate": "GET",
    "/orgs/acme/members/invitee/invitation": "GET",
    "/orgs/acme/teams": "DELETE",
    "/orgs/acme/teams/{team}": "PATCH",
    "/orgs/acme/teams/{team}/members": "POST",
    "/orgs/acme/service-accounts": "DELETE",
    "/orgs/acme/service-accounts/ci": "DELETE",
    "/orgs/acme/service-accounts/ci/tokens": "DELETE",
    "/orgs/acme/service-accounts/ci/tokens/{token}": "GET",
}


@pytest.fixture
def endpoint_world(acme, admin, bob, ops, ci):
    """bob deactivated-able (acme only), dave a user of no org, an invitee who has not come."""
    User.objects.create_user("dave")
    member_invite(actor=admin, org=acme, username="invitee", email="i@example.com")
    return {"team": ops.pk, "token": ci.pk}


def _call(api, token, method, path, body, world):
    return api(method, path.format(**world), token, body)


@pytest.mark.parametrize(("method", "path", "body", "status"), ENDPOINTS)
def test_it_answers_the_quartet(
    api, endpoint_world, admin_token, carol_token, mallory_token, method, path, body, status
):
    anonymous = _call(api, None, method, path, body, endpoint_world)
    assert (anonymous.status_code, error_code(anonymous)) == (401, "unauthenticated")
    outsider = _call(api, mallory_token, method, path, body, endpoint_world)
    assert (outsider.status_code, error_code(outsider)) == (404, "not_found")
    member = _call(api, carol_token, method, path, body, endpoint_world)
    assert (member.status_code, error_code(member)) == (403, "forbidden")
    allowed = _call(api, admin_token, method, path, body, endpoint_world)
    assert allowed.status_code == status, allowed.content[:300]


@pytest.mark.parametrize(("path", "method"), WRONG_METHOD.items())
def test_it_refuses_a_wrong_method(api, endpoint_world, admin_token, path, method):
    response = _call(api, admin_token, method, path, None, endpoint_world)
    assert response.status_code == 405


def test_it_lets_members_read_the_org_settings(api, acme, carol_token, mallory_token):
    assert api("GET", "/orgs/acme", carol_token).json()["required_approvals"] == 1
    assert api("GET", "/orgs/acme", mallory_token).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/orgs/globex/members/alice",
        "/orgs/globex/members/alice/deactivate",
        "/orgs/globex/teams/{team}",
        "/orgs/globex/service-accounts/ci",
        "/orgs/globex/service-accounts/ci/tokens",
    ],
)
def test_it_never_reaches_another_orgs_people_from_its_own(
    api, endpoint_world, mallory_token, path
):
    method = "POST" if path.endswith("deactivate") else "GET"
    response = _call(api, mallory_token, method, path, None, endpoint_world)
    assert (response.status_code, error_code(response)) == (404, "not_found")


# Happy paths: state and event


def test_it_changes_the_org_settings(api, acme, admin_token):
    body = api("PATCH", "/orgs/acme", admin_token, {"default_lock_level": "redact"}).json()
    assert body["default_lock_level"] == "redact"
    acme.refresh_from_db()
    assert acme.default_lock_level == "redact"
    assert last_event(acme).changes == {"default_lock_level": ["open", "redact"]}
    for bad in ({"required_approvals": 0}, {"name": None}, {"slug": "x"}, {"closed_is_final": 1}):
        assert api("PATCH", "/orgs/acme", admin_token, bad).status_code == 400, bad


def test_it_lists_members_with_their_teams(api, acme, ops, ci, admin_token):
    items = api("GET", "/orgs/acme/members", admin_token).json()["items"]
    by_name = {item["username"]: item for item in items}
    assert sorted(by_name) == ["acme.ci", "admin", "alice", "bob", "carol"]
    assert by_name["alice"]["teams"] == ["ops"]
    assert by_name["admin"]["role"] == "admin"
    assert by_name["acme.ci"]["service_account"] and not by_name["acme.ci"]["invited"]
    page = api("GET", "/orgs/acme/members", admin_token, limit=2).json()
    assert [i["username"] for i in page["items"]] == ["acme.ci", "admin"]
    rest = api("GET", "/orgs/acme/members", admin_token, cursor=page["next"]).json()
    assert rest["items"][0]["username"] == "alice"


def test_it_lists_members_in_a_fixed_number_of_queries(
    api, acme, admin, ops, admin_token, django_assert_max_num_queries
):
    for n in range(5):
        member_invite(actor=admin, org=acme, username=f"u{n}", email=f"u{n}@example.com")
    with django_assert_max_num_queries(8):
        assert len(api("GET", "/orgs/acme/members", admin_token).json()["items"]) == 9


def test_it_invites_and_shows_the_link_once(
    api, acme, admin_token, django_capture_on_commit_callbacks, mailoutbox
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(
            "POST",
            "/orgs/acme/invitations",
            admin_token,
            {"username": "wanda", "email": "wanda@example.com", "role": "admin"},
        )
    assert response.status_code == 201
    body = response.json()
    assert body["member"]["invited"] and body["member"]["role"] == "admin"
    assert "/account/set-password/" in body["set_password_url"]
    assert [m.to for m in mailoutbox] == [["wanda@example.com"]]
    assert last_event(acme).verb == "user.invited"
    taken = api(
        "POST", "/orgs/acme/invitations", admin_token, {"username": "mallory", "email": "m@x.org"}
    )
    assert (taken.status_code, error_code(taken)) == (409, "conflict")
    extra = api(
        "POST",
        "/orgs/acme/invitations",
        admin_token,
        {"username": "x", "email": "x@x.org", "is_superuser": True},
    )
    assert extra.status_code == 400
    assert not User.objects.filter(username="x").exists()


def test_it_adds_changes_and_removes_a_member(api, acme, globex, mallory, admin_token):
    assert (
        api("POST", "/orgs/acme/members", admin_token, {"username": "mallory"}).status_code == 201
    )
    assert last_event(acme).changes == {"user": [None, "mallory"], "role": [None, "member"]}
    again = api("POST", "/orgs/acme/members", admin_token, {"username": "mallory"})
    assert again.status_code == 409
    nobody = api("POST", "/orgs/acme/members", admin_token, {"username": "nobody"})
    assert nobody.status_code == 400
    role = api("PATCH", "/orgs/acme/members/mallory", admin_token, {"role": "admin"})
    assert role.json()["role"] == "admin"
    assert last_event(acme).changes == {"role": ["member", "admin"]}
    assert api("DELETE", "/orgs/acme/members/mallory", admin_token).status_code == 204
    assert last_event(acme).verb == "membership.deleted"
    assert list(Membership.objects.filter(user=mallory).values_list("org", flat=True)) == [
        globex.pk
    ]


def test_it_deactivates_only_a_user_of_this_org_alone(api, acme, admin, mallory, admin_token):
    membership_set(actor=admin, org=acme, user=mallory)
    refused = api("POST", "/orgs/acme/members/mallory/deactivate", admin_token)
    assert (refused.status_code, error_code(refused)) == (409, "conflict")
    assert "remove them from acme instead" in refused.json()["error"]["message"]
    done = api("POST", "/orgs/acme/members/alice/deactivate", admin_token)
    assert done.status_code == 200 and done.json()["active"] is False
    assert last_event(acme).verb == "user.deactivated"
    self_ = api("POST", "/orgs/acme/members/admin/deactivate", admin_token)
    assert self_.status_code == 400


def test_it_sets_team_members_of_the_org_only(api, acme, ops, admin_token):
    path = f"/orgs/acme/teams/{ops.pk}/members"
    body = api("PUT", path, admin_token, {"members": ["bob", "carol"]}).json()
    assert body["members"] == ["bob", "carol"]
    assert last_event(acme).changes == {"members": [["alice"], ["bob", "carol"]]}
    outsider = api("PUT", path, admin_token, {"members": ["mallory", "nobody"]})
    assert outsider.status_code == 400
    assert "mallory, nobody" in outsider.json()["error"]["message"]
    assert sorted(ops.group.user_set.values_list("username", flat=True)) == ["bob", "carol"]
    created = api("POST", "/orgs/acme/teams", admin_token, {"name": "risk"}).json()
    assert created["members"] == [] and Team.objects.filter(org=acme, name="risk").exists()
    assert api("DELETE", f"/orgs/acme/teams/{ops.pk}", admin_token).status_code == 204
    assert last_event(acme).verb == "team.deleted"


def test_it_makes_a_service_account_and_its_tokens(api, acme, model, admin_token):
    made = api("POST", "/orgs/acme/service-accounts", admin_token, {"name": "ci"})
    assert made.status_code == 201
    assert made.json()["username"] == "acme.ci"
    assert last_event(acme).verb == "service_account.created"
    assert (
        api("POST", "/orgs/acme/service-accounts", admin_token, {"name": "ci"}).status_code == 409
    )
    bad = api("POST", "/orgs/acme/service-accounts", admin_token, {"name": "Bad Name"})
    assert bad.status_code == 400
    token = api("POST", "/orgs/acme/service-accounts/ci/tokens", admin_token, {"name": "gha"})
    assert token.status_code == 201
    body = token.json()
    assert body["scope"] == "read" and body["org"] == "acme"  # least privilege by default
    assert token_authenticate(body["token"]).username == "acme.ci"
    assert last_event(acme).verb == "token.created"
    listed = api("GET", "/orgs/acme/service-accounts/ci/tokens", admin_token).json()["items"]
    assert [t["prefix"] for t in listed] == [body["prefix"]] and "token" not in listed[0]
    revoke = f"/orgs/acme/service-accounts/ci/tokens/{body['id']}"
    assert api("DELETE", revoke, admin_token).status_code == 204
    assert token_authenticate(body["token"]) is None
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is not None
    assert last_event(acme).verb == "token.revoked"
    past = api(
        "POST",
        "/orgs/acme/service-accounts/ci/tokens",
        admin_token,
        {"name": "old", "expires_at": "2001-01-01T00:00:00Z"},
    )
    assert past.status_code == 400
    # The account deactivates as any member does; its tokens stop at once.
    live = api("POST", "/orgs/acme/service-accounts/ci/tokens", admin_token, {"name": "x"}).json()
    assert api("POST", "/orgs/acme/members/acme.ci/deactivate", admin_token).status_code == 200
    assert api("GET", "/orgs/acme/models/fraud", live["token"]).status_code == 401


def test_it_never_revokes_a_token_through_another_account(api, acme, admin, ci, admin_token):
    service_account_create(actor=admin, org=acme, name="other")
    path = f"/orgs/acme/service-accounts/other/tokens/{ci.pk}"
    assert api("DELETE", path, admin_token).status_code == 404
    assert ApiToken.objects.get(pk=ci.pk).revoked_at is None
    assert not ActivityEvent.objects.filter(verb="token.revoked").exists()


def test_it_sets_and_clears_the_default_reviewers(api, acme, admin_token, ops):
    assert api("GET", "/orgs/acme", admin_token).json()["default_reviewers"] is None
    body = api("PATCH", "/orgs/acme", admin_token, {"default_reviewers": "ops"}).json()
    assert body["default_reviewers"] == "ops"
    acme.refresh_from_db()
    assert acme.default_reviewers == ops
    assert last_event(acme).changes == {"default_reviewers": [None, "ops"]}
    response = api("PATCH", "/orgs/acme", admin_token, {"default_reviewers": "nobody"})
    assert (response.status_code, error_code(response)) == (400, "invalid")
    body = api("PATCH", "/orgs/acme", admin_token, {"default_reviewers": None}).json()
    assert body["default_reviewers"] is None
    assert last_event(acme).changes == {"default_reviewers": ["ops", None]}
