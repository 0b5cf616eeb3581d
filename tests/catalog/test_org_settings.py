"""An organization's settings area in the UI (SPEC 4.6): its admins run it without a
superuser or the staff flag, and see nothing of another organization (404)."""

from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import ActivityEvent, ApiToken, Membership, Role, ServiceAccount, Team
from registry.services.members import member_invite, service_account_create
from registry.services.orgs import team_create, team_set_members
from registry.services.tokens import token_authenticate, token_create
from tests.conftest import messages_of

User = get_user_model()


def url(name: str, *args) -> str:
    return reverse(f"catalog:{name}", args=args)


def last_event(org) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


# mallory, globex's admin: neither staff nor superuser


def test_it_lets_mallory_invite_and_deactivate_in_globex(
    mallory, mallory_client, globex, django_capture_on_commit_callbacks, mailoutbox
):
    assert not (mallory.is_staff or mallory.is_superuser)
    assert mallory_client.get(url("org-members", "globex")).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = mallory_client.post(
            url("org-member-invite", "globex"),
            {"username": "wanda", "email": "wanda@example.com", "role": "member"},
        )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    link = response.context["link"]["url"]
    assert link in response.content.decode()
    assert [m.to for m in mailoutbox] == [["wanda@example.com"]]
    wanda = User.objects.get(username="wanda")
    assert Membership.objects.get(user=wanda).org == globex
    assert last_event(globex).verb == "user.invited"
    # The link is shown once: the page does not show it again.
    assert link not in mallory_client.get(url("org-members", "globex")).content.decode()
    # wanda sets her password through it, then logs in.
    follow = mallory_client.get(urlparse(link).path, follow=True)
    assert follow.context["validlink"]

    response = mallory_client.post(url("org-member-deactivate", "globex", "wanda"))
    assert response.status_code == 302
    wanda.refresh_from_db()
    assert not wanda.is_active
    assert last_event(globex).verb == "user.deactivated"
    mallory_client.post(url("org-member-reactivate", "globex", "wanda"))
    wanda.refresh_from_db()
    assert wanda.is_active


ACME_PAGES = ["org-settings", "org-members", "org-teams", "org-service-accounts"]


@pytest.mark.parametrize("name", ACME_PAGES)
def test_it_hides_acmes_settings_from_mallory(mallory_client, cast, name):
    assert mallory_client.get(url(name, "acme")).status_code == 404


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("org-settings", ["acme"]),
        ("org-member-invite", ["acme"]),
        ("org-member-add", ["acme"]),
        ("org-member-role", ["acme", "alice"]),
        ("org-member-remove", ["acme", "alice"]),
        ("org-member-deactivate", ["acme", "alice"]),
        ("org-member-deactivate", ["globex", "alice"]),  # acme's user, through globex
        ("org-member-reactivate", ["globex", "alice"]),
        ("org-member-invitation", ["globex", "alice"]),
        ("org-member-role", ["globex", "alice"]),
        ("org-team-create", ["acme"]),
        ("org-team-members", ["acme", "{team}"]),
        ("org-team-members", ["globex", "{team}"]),  # acme's team, through globex
        ("org-team-delete", ["globex", "{team}"]),
        ("org-service-account-create", ["acme"]),
        ("org-service-account-token", ["globex", "ci"]),  # acme's account
        ("org-service-account-token-revoke", ["globex", "ci", "{token}"]),
    ],
)
def test_it_never_lets_mallory_reach_acmes_people(mallory_client, acme, admin, alice, name, args):
    team = team_create(actor=admin, org=acme, name="ops")
    account = service_account_create(actor=admin, org=acme, name="ci")
    token, _ = token_create(actor=admin, user=account.user, name="gha")
    args = [str(arg).format(team=team.pk, token=token.pk) for arg in args]
    events = ActivityEvent.objects.count()
    response = mallory_client.post(
        url(name, *args), {"role": "member", "username": "x", "email": "x@x.org", "name": "x"}
    )
    assert response.status_code == 404
    assert ActivityEvent.objects.count() == events
    alice.refresh_from_db()
    assert alice.is_active and Membership.objects.filter(user=alice, org=acme).exists()
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


@pytest.mark.parametrize("name", ACME_PAGES)
def test_it_answers_403_to_a_member_who_is_not_an_admin(carol_client, cast, name):
    assert carol_client.get(url(name, "acme")).status_code == 403


def test_it_refuses_a_members_post_with_a_message_and_changes_nothing(carol_client, acme, bob):
    events = ActivityEvent.objects.count()
    response = carol_client.post(url("org-member-deactivate", "acme", "bob"))
    assert response.status_code == 302
    assert "org admin" in " ".join(messages_of(response))
    bob.refresh_from_db()
    assert bob.is_active and ActivityEvent.objects.count() == events


@pytest.mark.parametrize("name", ACME_PAGES)
def test_it_sends_anonymous_visitors_to_log_in(client, cast, name):
    response = client.get(url(name, "acme"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("org-member-invite", ["acme"]),
        ("org-member-deactivate", ["acme", "bob"]),
        ("org-team-create", ["acme"]),
        ("org-service-account-create", ["acme"]),
    ],
)
def test_it_refuses_a_get_to_a_change(admin_client, cast, name, args):
    assert admin_client.get(url(name, *args)).status_code == 405


# The admin's pages, one by one


def test_it_changes_the_org_settings(admin_client, acme):
    page = admin_client.get(url("org-settings", "acme"))
    assert page.status_code == 200
    response = admin_client.post(
        url("org-settings", "acme"),
        {"name": "Acme", "default_lock_level": "redact", "required_approvals": "2"},
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.name, acme.default_lock_level, acme.required_approvals) == ("Acme", "redact", 2)
    assert last_event(acme).changes == {
        "name": ["Acme Corp", "Acme"],
        "default_lock_level": ["open", "redact"],
        "required_approvals": [1, 2],
    }
    bad = admin_client.post(
        url("org-settings", "acme"),
        {"name": "Acme", "default_lock_level": "redact", "required_approvals": "0"},
    )
    assert bad.status_code == 302 and "Required approvals" in " ".join(messages_of(bad))
    acme.refresh_from_db()
    assert acme.required_approvals == 2


def test_it_refuses_to_leave_compliance_mode(admin_client, acme):
    form = {"name": "Acme Corp", "default_lock_level": "open", "required_approvals": "1"}
    admin_client.post(url("org-settings", "acme"), {**form, "closed_is_final": "on"})
    acme.refresh_from_db()
    assert acme.closed_is_final
    response = admin_client.post(url("org-settings", "acme"), form)
    assert "cannot be turned off" in " ".join(messages_of(response))
    acme.refresh_from_db()
    assert acme.closed_is_final


def test_it_adds_sets_the_role_of_and_removes_a_member(admin_client, acme, globex, mallory):
    admin_client.post(url("org-member-add", "acme"), {"username": "mallory", "role": "member"})
    assert Membership.objects.filter(org=acme, user=mallory).exists()
    admin_client.post(url("org-member-role", "acme", "mallory"), {"role": "admin"})
    assert Membership.objects.get(org=acme, user=mallory).role == Role.ADMIN
    # mallory belongs to globex too: removed from acme, never deactivated from here.
    refused = admin_client.post(url("org-member-deactivate", "acme", "mallory"))
    assert "remove them from acme instead" in " ".join(messages_of(refused))
    admin_client.post(url("org-member-remove", "acme", "mallory"))
    mallory.refresh_from_db()
    assert mallory.is_active
    assert list(mallory.memberships.values_list("org__slug", flat=True)) == ["globex"]
    assert last_event(acme).verb == "membership.deleted"


def test_it_refuses_a_bad_invitation_with_a_message(admin_client, acme):
    users = User.objects.count()
    response = admin_client.post(
        url("org-member-invite", "acme"),
        {"username": "alice", "email": "a@x.org", "role": "member"},
    )
    assert response.status_code == 302
    assert "already exists" in " ".join(messages_of(response))
    response = admin_client.post(
        url("org-member-invite", "acme"), {"username": "zed", "email": "nope", "role": "member"}
    )
    assert "E-mail" in " ".join(messages_of(response))
    assert User.objects.count() == users


def test_it_renews_a_set_password_link(admin, admin_client, acme):
    member_invite(actor=admin, org=acme, username="wanda", email="w@x.org")
    page = admin_client.get(url("org-members", "acme")).content.decode()
    assert "New set-password link" in page
    response = admin_client.post(url("org-member-invitation", "acme", "wanda"))
    assert response.status_code == 200
    assert "/account/set-password/" in response.context["link"]["url"]


def test_it_makes_sets_and_deletes_a_team(admin_client, acme, alice, bob):
    admin_client.post(url("org-team-create", "acme"), {"name": "risk"})
    team = Team.objects.get(org=acme, name="risk")
    admin_client.post(url("org-team-members", "acme", team.pk), {"members": ["alice", "bob"]})
    assert sorted(team.group.user_set.values_list("username", flat=True)) == ["alice", "bob"]
    assert last_event(acme).changes == {"members": [[], ["alice", "bob"]]}
    page = admin_client.get(url("org-teams", "acme")).content.decode()
    assert 'value="alice" checked' in page and 'value="carol" checked' not in page
    refused = admin_client.post(url("org-team-members", "acme", team.pk), {"members": ["mallory"]})
    assert "not members of acme: mallory" in " ".join(messages_of(refused))
    admin_client.post(url("org-team-delete", "acme", team.pk))
    assert not Team.objects.filter(pk=team.pk).exists()


def test_it_makes_a_service_account_and_shows_its_token_once(admin_client, acme, model):
    admin_client.post(url("org-service-account-create", "acme"), {"name": "ci"})
    account = ServiceAccount.objects.get(org=acme, name="ci")
    response = admin_client.post(
        url("org-service-account-token", "acme", "ci"),
        {"name": "gha", "scope": "read"},
        follow=True,  # post/redirect/get: a reload makes no second token
    )
    assert response.redirect_chain == [(url("org-service-accounts", "acme"), 302)]
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    raw = response.context["plaintext"]["raw"]
    assert raw in response.content.decode()
    assert token_authenticate(raw) == account.user
    token = ApiToken.objects.get(user=account.user)
    assert (token.scope, token.org) == ("read", acme)
    page = admin_client.get(url("org-service-accounts", "acme")).content.decode()
    assert raw not in page and token.prefix in page
    assert ApiToken.objects.filter(user=account.user).count() == 1
    admin_client.post(url("org-service-account-token-revoke", "acme", "ci", token.pk))
    assert token_authenticate(raw) is None
    # Deactivated from its page, it comes back to it.
    response = admin_client.post(
        url("org-member-deactivate", "acme", "acme.ci"),
        {"next": url("org-service-accounts", "acme")},
    )
    assert response["Location"] == url("org-service-accounts", "acme")
    account.user.refresh_from_db()
    assert not account.user.is_active


def test_it_shows_the_settings_link_to_admins_only(admin_client, carol_client, cast):
    settings_link = url("org-settings", "acme")
    assert settings_link in admin_client.get(url("home")).content.decode()
    assert settings_link not in carol_client.get(url("home")).content.decode()


# Query counts of the list pages do not grow with rows


def _grow(admin, acme, n: int) -> None:
    team = team_create(actor=admin, org=acme, name=f"team-{n}")
    for i in range(n):
        membership, _ = member_invite(
            actor=admin, org=acme, username=f"u{n}-{i}", email=f"u{i}@x.org"
        )
        account = service_account_create(actor=admin, org=acme, name=f"bot-{n}-{i}")
        token_create(actor=admin, user=account.user, name="t")
        team_set_members(actor=admin, team=team, users=[membership.user, account.user])


@pytest.mark.parametrize("name", ["org-members", "org-teams", "org-service-accounts"])
def test_it_lists_in_a_fixed_number_of_queries(
    admin, admin_client, acme, name, django_assert_max_num_queries
):
    _grow(admin, acme, 5)
    with django_assert_max_num_queries(12) as small:
        assert admin_client.get(url(name, "acme")).status_code == 200
    _grow(admin, acme, 20)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert admin_client.get(url(name, "acme")).status_code == 200


# Personal tokens: scope and organization


def test_it_makes_a_read_only_personal_token_for_one_org(alice, alice_client, acme):
    response = alice_client.post(
        url("token-create"), {"name": "ci", "scope": "read", "org": str(acme.pk)}
    )
    assert response.status_code == 302
    token = ApiToken.objects.get(user=alice, name="ci")
    assert (token.scope, token.org) == ("read", acme)
    page = alice_client.get(url("tokens")).content.decode()
    assert "read-only" in page


def test_it_refuses_a_personal_token_for_an_org_of_someone_else(alice_client, globex):
    response = alice_client.post(url("token-create"), {"name": "ci", "org": str(globex.pk)})
    assert response.status_code == 400
    assert not ApiToken.objects.filter(name="ci").exists()
