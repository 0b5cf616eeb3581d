"""The pages of single sign-on: an org's SSO settings page (its admins map groups; members
get 403, other orgs' admins 404), and the login page with LOCAL_LOGIN."""

import pytest
from django.test import Client
from django.urls import reverse

from registry.demo import demo_password
from registry.models import ActivityEvent, Team
from registry.services.orgs import team_create
from sso.models import GroupMapping
from sso.services import mapping_create
from tests.conftest import messages_of


def url(name: str, *args) -> str:
    return reverse(f"sso:{name}", args=args)


def last_event(org) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


@pytest.fixture
def risk(admin, acme) -> Team:
    return team_create(actor=admin, org=acme, name="risk")


@pytest.fixture
def mapping(admin, acme, risk) -> GroupMapping:
    return mapping_create(actor=admin, org=acme, group="ml", teams=[risk])


# The org's SSO page


def test_it_lets_an_org_admin_map_change_and_delete_a_group(admin_client, acme, risk):
    page = admin_client.get(url("org-sso", "acme"))
    assert page.status_code == 200
    assert "Single sign-on" in page.content.decode()

    response = admin_client.post(
        url("mapping-create", "acme"), {"group": "ml", "role": "admin", "teams": [risk.pk]}
    )
    assert response.status_code == 302
    mapping = GroupMapping.objects.get(org=acme)
    assert (mapping.group, mapping.role, list(mapping.teams.all())) == ("ml", "admin", [risk])
    assert last_event(acme).verb == "sso_mapping.created"
    assert last_event(acme).actor_name == "admin"
    assert "ml" in admin_client.get(url("org-sso", "acme")).content.decode()

    response = admin_client.post(
        url("mapping-update", "acme", mapping.pk), {"group": "ml-team", "role": "member"}
    )
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert (mapping.group, mapping.role, mapping.teams.count()) == ("ml-team", "member", 0)
    assert last_event(acme).changes["group"] == ["ml", "ml-team"]

    response = admin_client.post(url("mapping-delete", "acme", mapping.pk))
    assert response.status_code == 302
    assert not GroupMapping.objects.exists()
    assert last_event(acme).verb == "sso_mapping.deleted"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"group": "", "role": "member"}, "Group: This field is required."),
        ({"group": "ml", "role": "owner"}, "Role: Select a valid choice."),
        ({"group": "ml", "role": "member", "teams": ["999999"]}, "Teams: Select a valid choice."),
        ({"group": "x" * 201, "role": "member"}, "Group: Ensure this value has at most 200"),
    ],
)
def test_it_refuses_bad_input_with_a_message_and_changes_nothing(
    admin_client, acme, mapping, data, message
):
    seq = last_event(acme).seq
    for target in (url("mapping-create", "acme"), url("mapping-update", "acme", mapping.pk)):
        response = admin_client.post(target, {**data, "next": url("org-sso", "acme")})
        assert response.status_code == 302 and response["Location"] == url("org-sso", "acme")
        assert any(text.startswith(message) for text in messages_of(response)), messages_of(
            response
        )
    mapping.refresh_from_db()
    assert (mapping.group, mapping.role) == ("ml", "member")
    assert GroupMapping.objects.count() == 1
    assert last_event(acme).seq == seq


def test_it_refuses_a_group_mapped_twice_and_another_orgs_team(
    admin_client, mallory, acme, globex, mapping
):
    theirs = team_create(actor=mallory, org=globex, name="theirs")
    response = admin_client.post(url("mapping-create", "acme"), {"group": "ml", "role": "member"})
    assert any("mapped already" in text for text in messages_of(response))
    response = admin_client.post(
        url("mapping-create", "acme"), {"group": "new", "role": "member", "teams": [theirs.pk]}
    )
    assert any("Select a valid choice" in text for text in messages_of(response))
    assert list(GroupMapping.objects.values_list("group", flat=True)) == ["ml"]


def test_it_answers_403_to_a_member_who_is_not_an_admin(carol_client, acme, mapping):
    assert carol_client.get(url("org-sso", "acme")).status_code == 403
    response = carol_client.post(url("mapping-create", "acme"), {"group": "x", "role": "admin"})
    assert response.status_code == 302
    assert any("org admin" in text for text in messages_of(response))
    carol_client.post(url("mapping-delete", "acme", mapping.pk))
    assert list(GroupMapping.objects.values_list("group", flat=True)) == ["ml"]


def test_it_answers_404_to_another_orgs_admin(mallory_client, acme, mapping):
    seq = last_event(acme).seq
    assert mallory_client.get(url("org-sso", "acme")).status_code == 404
    assert mallory_client.post(url("mapping-create", "acme"), {"group": "x"}).status_code == 404
    assert mallory_client.post(url("mapping-delete", "acme", mapping.pk)).status_code == 404
    # Nor through their own org's URL: the mapping is looked up within the org.
    assert mallory_client.post(url("mapping-delete", "globex", mapping.pk)).status_code == 404
    assert GroupMapping.objects.count() == 1 and last_event(acme).seq == seq


def test_it_refuses_a_get_to_a_change(admin_client, mapping):
    assert admin_client.get(url("mapping-create", "acme")).status_code == 405
    assert admin_client.get(url("mapping-delete", "acme", mapping.pk)).status_code == 405


def test_it_lists_mappings_in_a_fixed_number_of_queries(
    admin, admin_client, acme, risk, django_assert_max_num_queries
):
    for n in range(6):
        mapping_create(actor=admin, org=acme, group=f"g{n}", teams=[risk])
    with django_assert_max_num_queries(12):
        assert admin_client.get(url("org-sso", "acme")).status_code == 200


def test_it_links_the_page_from_the_org_settings(admin_client, acme):
    page = admin_client.get(reverse("catalog:org-settings", args=["acme"])).content.decode()
    assert url("org-sso", "acme") in page


# The login page


@pytest.fixture
def sso_on(settings):
    settings.SSO_ENABLED = True
    settings.SSO_PROVIDER_NAME = "Acme ID"
    return settings


def test_it_shows_only_the_password_form_without_sso(client, settings):
    settings.SSO_ENABLED = False
    page = client.get("/login/").content.decode()
    assert 'name="password"' in page and "Sign in with" not in page
    assert client.get(url("login")).status_code == 404
    assert client.get(url("callback")).status_code == 404


def test_it_offers_sign_in_with_the_provider_beside_the_form(client, sso_on):
    page = client.get("/login/?next=/models/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' in page
    assert f'href="{url("login")}?next=/models/"' in page


def test_local_login_off_hides_the_form_and_lets_only_superusers_in(sso_on, cast, root, admin):
    sso_on.LOCAL_LOGIN = False
    client = Client()
    page = client.get("/login/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' not in page
    assert 'name="password"' in client.get("/login/?local=1").content.decode()

    for username in ("alice", "admin"):
        response = client.post(
            "/login/", {"username": username, "password": demo_password(username)}
        )
        assert response.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in client.session
    response = Client().post(
        "/admin/login/", {"username": "admin", "password": demo_password("admin")}
    )
    assert response.status_code == 200 and "_auth_user_id" not in response.wsgi_request.session

    response = client.post("/login/", {"username": "root", "password": "root-demo"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(root.pk)


def test_local_login_on_lets_members_in_by_password(client, cast):
    response = client.post("/login/", {"username": "alice", "password": demo_password("alice")})
    assert response.status_code == 302
