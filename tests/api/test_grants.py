"""Sharing a model over HTTP (SPEC 3.1): list, grant and revoke view, write and approve for
users and teams, through the services the UI's Settings tab calls."""

import pytest

from registry.models import ActivityEvent, ModelGroupPermission, ModelUserPermission, TokenScope
from registry.services.orgs import team_create, team_set_members
from registry.services.registered_models import model_create, model_grant
from registry.services.tokens import token_create
from tests.api.conftest import error_code, last_event

pytestmark = pytest.mark.django_db

GRANTS = "/orgs/acme/models/fraud/grants"


def _held(model) -> set[tuple[str, str]]:
    users = {
        (f"user:{g.user.username}", g.permission.codename.split("_")[0])
        for g in ModelUserPermission.objects.filter(content_object=model)
    }
    teams = {
        (f"team:{g.group.team.name}", g.permission.codename.split("_")[0])
        for g in ModelGroupPermission.objects.filter(content_object=model)
    }
    return users | teams


@pytest.fixture
def ops(acme, admin, carol):
    team = team_create(actor=admin, org=acme, name="ops")
    team_set_members(actor=admin, team=team, users=[carol])
    return team


# Listing


def test_it_lists_the_grants_of_a_model(api, model, ops, admin, alice_token):
    model_grant(actor=admin, model=model, permission="approve", team=ops)
    response = api("GET", GRANTS, alice_token)
    assert response.status_code == 200
    assert response.json()["items"] == [
        {"permission": "view", "user": "admin", "team": None},
        {"permission": "write", "user": "admin", "team": None},
        {"permission": "approve", "user": "admin", "team": None},
        {"permission": "view", "user": "alice", "team": None},
        {"permission": "write", "user": "alice", "team": None},
        {"permission": "approve", "user": "alice", "team": None},
        {"permission": "view", "user": "bob", "team": None},
        {"permission": "approve", "user": "bob", "team": None},
        {"permission": "approve", "user": None, "team": "ops"},
    ]


def test_it_refuses_the_list_to_a_viewer_and_hides_it_from_an_outsider(
    api, model, carol_token, mallory_token
):
    assert api("GET", GRANTS, carol_token).status_code == 403
    assert api("GET", GRANTS, mallory_token).status_code == 404


def test_it_hides_the_grants_of_another_orgs_model(api, globex, mallory, admin_token):
    model_create(actor=mallory, org=globex, name="fraud")
    assert api("GET", "/orgs/globex/models/fraud/grants", admin_token).status_code == 404


@pytest.mark.parametrize("rows", [5, 40])
def test_it_lists_grants_in_a_fixed_number_of_queries(
    api, model, acme, admin, alice_token, rows, django_assert_max_num_queries
):
    for index in range(rows):
        team = team_create(actor=admin, org=acme, name=f"team-{index:02}")
        model_grant(actor=admin, model=model, permission="view", team=team)
    api("GET", GRANTS, alice_token)  # the token's first use also notes its last use
    with django_assert_max_num_queries(4):
        response = api("GET", GRANTS, alice_token)
    assert len([g for g in response.json()["items"] if g["team"]]) == rows


# Granting


def test_it_grants_a_user(api, model, carol, admin_token):
    response = api("POST", GRANTS, admin_token, {"permission": "write", "user": "carol"})
    assert response.status_code == 201
    assert response.json() == {"permission": "write", "user": "carol", "team": None}
    assert ("user:carol", "write") in _held(model)
    event = last_event(model.org)
    assert (event.verb, event.actor_name, event.data["grantee"]) == (
        "permission.granted",
        "admin",
        "user:carol",
    )
    assert event.changes == {"permission": [None, "write"]}


def test_it_grants_a_team(api, model, ops, admin_token):
    response = api("POST", GRANTS, admin_token, {"permission": "approve", "team": "ops"})
    assert response.status_code == 201
    assert ("team:ops", "approve") in _held(model)
    assert last_event(model.org).data["grantee"] == "team:ops"


def test_it_answers_a_wrong_method_on_grants(api, model, admin_token):
    response = api("PUT", GRANTS, admin_token, {"permission": "view", "user": "carol"})
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_it_refuses_sharing_to_a_writer_who_does_not_own_the_model_and_to_a_viewer(
    api, model, alice_token, carol_token
):
    before = (_held(model), ActivityEvent.objects.count())
    for token in (alice_token, carol_token):
        response = api("POST", GRANTS, token, {"permission": "write", "user": "carol"})
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
    assert (_held(model), ActivityEvent.objects.count()) == before


def test_it_hides_sharing_from_an_outsider(api, model, mallory_token):
    response = api("POST", GRANTS, mallory_token, {"permission": "view", "user": "mallory"})
    assert response.status_code == 404
    assert ("user:mallory", "view") not in _held(model)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"permission": "own", "user": "carol"}, "permission"),
        ({"permission": "view"}, "exactly one of a user or a team"),
        ({"permission": "view", "user": "carol", "team": "ops"}, "exactly one"),
        ({"permission": "view", "user": "nobody"}, "user nobody not found"),
        ({"permission": "view", "user": "mallory"}, "not a member of acme"),
        ({"permission": "view", "team": "nope"}, "team nope not found in acme"),
        ({"permission": "view", "user": "carol", "role": "admin"}, "role cannot be set"),
    ],
)
def test_it_refuses_a_bad_grant_and_changes_nothing(api, model, ops, admin_token, body, message):
    before = (_held(model), ActivityEvent.objects.count())
    response = api("POST", GRANTS, admin_token, body)
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert message in response.json()["error"]["message"]
    assert (_held(model), ActivityEvent.objects.count()) == before


def test_it_refuses_a_team_of_another_org(api, model, globex, mallory, admin_token):
    team_create(actor=mallory, org=globex, name="globex-ops")
    response = api("POST", GRANTS, admin_token, {"permission": "view", "team": "globex-ops"})
    assert response.status_code == 400
    assert "not found in acme" in response.json()["error"]["message"]


# Revoking


def test_it_revokes_a_users_grant(api, model, admin_token):
    response = api("DELETE", f"{GRANTS}?permission=approve&user=bob", admin_token)
    assert response.status_code == 204
    assert ("user:bob", "approve") not in _held(model)
    assert ("user:bob", "view") in _held(model)
    event = last_event(model.org)
    assert (event.verb, event.data["grantee"], event.changes) == (
        "permission.revoked",
        "user:bob",
        {"permission": ["approve", None]},
    )


def test_it_revokes_a_teams_grant(api, model, ops, admin, admin_token):
    model_grant(actor=admin, model=model, permission="view", team=ops)
    response = api("DELETE", f"{GRANTS}?permission=view&team=ops", admin_token)
    assert response.status_code == 204
    assert ("team:ops", "view") not in _held(model)
    assert last_event(model.org).data["grantee"] == "team:ops"


def test_it_refuses_revoking_to_a_non_owner_and_hides_it_from_an_outsider(
    api, model, alice_token, carol_token, mallory_token
):
    before = (_held(model), ActivityEvent.objects.count())
    assert api("DELETE", f"{GRANTS}?permission=approve&user=bob", alice_token).status_code == 403
    assert api("DELETE", f"{GRANTS}?permission=approve&user=bob", carol_token).status_code == 403
    assert api("DELETE", f"{GRANTS}?permission=approve&user=bob", mallory_token).status_code == 404
    assert (_held(model), ActivityEvent.objects.count()) == before


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("permission=write&user=carol", 404),  # carol holds no write grant
        ("permission=view&user=nobody", 404),
        ("permission=view&team=nope", 404),
        ("permission=own&user=bob", 400),
        ("permission=view", 400),
        ("permission=view&user=bob&team=ops", 400),
        ("user=bob", 400),
    ],
)
def test_it_refuses_revoking_what_is_not_held_and_changes_nothing(
    api, model, admin_token, path, status
):
    before = (_held(model), ActivityEvent.objects.count())
    response = api("DELETE", f"{GRANTS}?{path}", admin_token)
    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert (_held(model), ActivityEvent.objects.count()) == before


def test_it_refuses_sharing_with_a_read_only_token(api, model, admin):
    token = token_create(actor=admin, user=admin, name="ro", scope=TokenScope.READ)[1]
    before = (_held(model), ActivityEvent.objects.count())
    post = api("POST", GRANTS, token, {"permission": "view", "user": "carol"})
    delete = api("DELETE", f"{GRANTS}?permission=approve&user=bob", token)
    assert (post.status_code, delete.status_code) == (403, 403)
    assert (_held(model), ActivityEvent.objects.count()) == before
    assert api("GET", GRANTS, token).status_code == 200
