"""Org admins run their organization (SPEC 4.6): invitations, deactivation within one org,
service accounts, and the rules the services hold whatever the surface."""

from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Membership, Role, ServiceAccount
from registry.services.members import (
    member_deactivate,
    member_invitation_renew,
    member_invite,
    member_reactivate,
    service_account_create,
)
from registry.services.orgs import membership_remove, membership_set

User = get_user_model()
pytestmark = pytest.mark.django_db


def last_event(org) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


def state() -> list:
    """What an org admin's services may change: users, memberships, accounts, events."""
    return [
        list(User.objects.order_by("pk").values_list("username", "is_active", "password")),
        list(Membership.objects.order_by("pk").values_list("org_id", "user_id", "role")),
        list(ServiceAccount.objects.values_list("pk", flat=True)),
        ActivityEvent.objects.count(),
    ]


# Invitations


def test_it_invites_a_user_who_sets_a_password_through_the_link(
    mallory, globex, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        membership, link = member_invite(
            actor=mallory, org=globex, username="wanda", email="wanda@example.com"
        )
    wanda = membership.user
    assert (membership.org, membership.role) == (globex, Role.MEMBER)
    assert not wanda.has_usable_password() and wanda.is_active
    event = last_event(globex)
    assert (event.verb, event.actor_name) == ("user.invited", "mallory")
    assert event.changes == {
        "user": [None, "wanda"],
        "email": [None, "wanda@example.com"],
        "role": [None, "member"],
    }
    # The e-mail carries a link of its own (made by the task), as valid as the one shown.
    [message] = mail.outbox
    assert message.to == ["wanda@example.com"] and "wanda" in message.body
    assert "Globex" in message.subject
    client = Client()
    form = client.get(urlparse(link).path, follow=True)
    assert form.context["validlink"]
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a long new secret 42", "new_password2": "a long new secret 42"},
    )
    assert done.status_code == 302
    wanda.refresh_from_db()
    assert wanda.check_password("a long new secret 42")
    # Once used, the link (and the e-mailed one) no longer works.
    assert not client.get(urlparse(link).path, follow=True).context["validlink"]
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(Conflict, match="has set a password"),
    ):
        member_invitation_renew(actor=mallory, org=globex, user=wanda)
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"username": "alice"}, Conflict),  # taken, in another org
        ({"username": "ALICE"}, Conflict),  # taken, whatever the case
        ({"username": "bad name!"}, Invalid),
        ({"username": ""}, Invalid),
        ({"email": "not-an-address"}, Invalid),
        ({"email": ""}, Invalid),
        ({"role": "owner"}, Invalid),
        ({"first_name": "x" * 151}, Invalid),
    ],
)
def test_it_refuses_a_bad_invitation_and_changes_nothing(mallory, globex, fields, error):
    before = state()
    with pytest.raises(error):
        member_invite(
            actor=mallory,
            org=globex,
            **{"username": "wanda", "email": "wanda@example.com", **fields},
        )
    assert state() == before


def test_it_lets_only_the_orgs_admins_invite(acme, admin, carol, mallory):
    with pytest.raises(NotFound):
        member_invite(actor=mallory, org=acme, username="wanda", email="w@example.com")
    with pytest.raises(Forbidden):
        member_invite(actor=carol, org=acme, username="wanda", email="w@example.com")
    member_invite(actor=admin, org=acme, username="wanda", email="w@example.com", role="admin")
    assert Membership.objects.get(user__username="wanda").role == Role.ADMIN


def test_it_renews_an_invitation_only_for_a_user_of_this_org_alone(
    acme, globex, admin, mallory, django_capture_on_commit_callbacks
):
    membership, _ = member_invite(actor=mallory, org=globex, username="wanda", email="w@x.org")
    with django_capture_on_commit_callbacks(execute=True):
        link = member_invitation_renew(actor=mallory, org=globex, user=membership.user)
    assert "/account/set-password/" in link
    assert [m.to for m in mail.outbox] == [["w@x.org"]]
    assert last_event(globex).data == {"user": "wanda", "again": True}
    # Once wanda is also in acme, no single org's admin may hand out her password.
    membership_set(actor=admin, org=acme, user=membership.user)
    with pytest.raises(Conflict, match="another organization"):
        member_invitation_renew(actor=mallory, org=globex, user=membership.user)


# Deactivation


def test_it_deactivates_and_reactivates_a_user_of_this_org_alone(mallory, globex):
    membership, _ = member_invite(actor=mallory, org=globex, username="wanda", email="w@x.org")
    wanda = membership.user
    member_deactivate(actor=mallory, org=globex, user=wanda)
    wanda.refresh_from_db()
    assert not wanda.is_active
    event = last_event(globex)
    assert (event.verb, event.target_type, event.target_repr) == (
        "user.deactivated",
        "user",
        "wanda",
    )
    assert event.changes == {"is_active": [True, False]}
    # Twice changes nothing and records nothing.
    member_deactivate(actor=mallory, org=globex, user=wanda)
    assert last_event(globex).pk == event.pk
    member_reactivate(actor=mallory, org=globex, user=wanda)
    wanda.refresh_from_db()
    assert wanda.is_active
    assert last_event(globex).verb == "user.reactivated"
    assert Membership.objects.filter(org=globex, user=wanda).exists()


def test_it_removes_rather_than_deactivates_a_member_of_several_orgs(
    acme, globex, admin, mallory, alice
):
    membership_set(actor=mallory, org=globex, user=alice)
    before = state()
    with pytest.raises(Conflict, match="remove them from globex instead"):
        member_deactivate(actor=mallory, org=globex, user=alice)
    assert state() == before
    membership_remove(actor=mallory, org=globex, user=alice)
    alice.refresh_from_db()
    assert alice.is_active
    assert list(alice.memberships.values_list("org__slug", flat=True)) == ["acme"]


@pytest.mark.parametrize(
    ("actor", "target", "error"),
    [
        ("mallory", "alice", NotFound),  # another org's member
        ("carol", "bob", Forbidden),  # not an admin
        ("admin", "admin", Invalid),  # oneself
    ],
)
def test_it_refuses_to_deactivate(request, acme, globex, actor, target, error):
    actor, target = request.getfixturevalue(actor), request.getfixturevalue(target)
    org = globex if actor.username == "mallory" else acme
    before = state()
    with pytest.raises(error):
        member_deactivate(actor=actor, org=org, user=target)
    assert state() == before


def test_it_keeps_an_active_admin(acme, admin, carol, root):
    membership_set(actor=admin, org=acme, user=carol, role=Role.ADMIN)
    member_deactivate(actor=carol, org=acme, user=admin)
    # carol is now the last active admin: nobody may demote or remove her.
    with pytest.raises(Conflict, match="last admin"):
        membership_set(actor=root, org=acme, user=carol, role=Role.MEMBER)
    with pytest.raises(Conflict, match="last admin"):
        membership_remove(actor=root, org=acme, user=carol)


def test_it_never_lets_an_org_admin_deactivate_a_superuser(globex, mallory, root):
    membership_set(actor=mallory, org=globex, user=root)
    with pytest.raises(Forbidden, match="superuser"):
        member_deactivate(actor=mallory, org=globex, user=root)


def test_it_ends_sessions_and_tokens_of_a_deactivated_user(mallory, globex, api_user_token):
    from registry.services.tokens import token_authenticate

    membership, _ = member_invite(actor=mallory, org=globex, username="wanda", email="w@x.org")
    wanda = membership.user
    wanda.set_password("secret pass 42")
    wanda.save()
    raw = api_user_token(wanda)
    client = Client()
    client.force_login(wanda)
    assert client.get("/").status_code == 200
    member_deactivate(actor=mallory, org=globex, user=wanda)
    assert client.get("/").status_code == 302  # to the login page
    assert token_authenticate(raw) is None


@pytest.fixture
def api_user_token():
    from registry.services.tokens import token_create

    return lambda user: token_create(actor=user, user=user, name="t")[1]


# Service accounts


def test_it_makes_a_service_account_that_never_logs_in(acme, admin):
    account = service_account_create(actor=admin, org=acme, name="ci", description="GitHub")
    user = account.user
    assert user.username == "acme.ci" and not user.has_usable_password()
    assert Membership.objects.get(user=user).org == acme
    event = last_event(acme)
    assert (event.verb, event.target_type) == ("service_account.created", "service_account")
    assert event.changes == {"name": [None, "ci"], "description": [None, "GitHub"]}
    assert event.data == {"user": "acme.ci"}
    client = Client()
    response = client.post(reverse("login"), {"username": "acme.ci", "password": "!"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("name", "error"),
    [("CI", Invalid), ("-ci", Invalid), ("c" * 41, Invalid), ("a.b", Invalid), (None, Invalid)],
)
def test_it_refuses_a_bad_service_account_name(acme, admin, name, error):
    before = state()
    with pytest.raises(error):
        service_account_create(actor=admin, org=acme, name=name)
    assert state() == before


def test_it_refuses_a_taken_service_account_name(acme, admin, carol, mallory, globex):
    service_account_create(actor=admin, org=acme, name="ci")
    with pytest.raises(Conflict):
        service_account_create(actor=admin, org=acme, name="ci")
    with pytest.raises(Forbidden):
        service_account_create(actor=carol, org=acme, name="bot")
    with pytest.raises(NotFound):
        service_account_create(actor=mallory, org=acme, name="bot")
    # Another org may have its own "ci".
    assert service_account_create(actor=mallory, org=globex, name="ci").user.username == (
        "globex.ci"
    )


def test_it_keeps_a_service_account_in_its_org_as_a_member(acme, globex, admin, mallory, root):
    account = service_account_create(actor=admin, org=acme, name="ci")
    with pytest.raises(Invalid, match="another organization"):
        membership_set(actor=mallory, org=globex, user=account.user)
    with pytest.raises(Invalid, match="cannot be an org admin"):
        membership_set(actor=admin, org=acme, user=account.user, role=Role.ADMIN)
    with pytest.raises(Conflict, match="deactivate it instead"):
        membership_remove(actor=root, org=acme, user=account.user)
    with pytest.raises(Invalid, match="service account"):
        member_invitation_renew(actor=admin, org=acme, user=account.user)
    member_deactivate(actor=admin, org=acme, user=account.user)
    account.user.refresh_from_db()
    assert not account.user.is_active
