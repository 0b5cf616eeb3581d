"""Single sign-on's services with the claims a provider would send: the mappings, what a
login does to memberships, roles and teams, and which account a login is."""

import pytest
from django.contrib.auth import get_user_model

from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Membership, Role, Team
from registry.services.orgs import membership_remove, team_create, team_set_members
from sso.accounts import account_for_login, groups_of, login_complete
from sso.models import GroupMapping, Identity, ManagedMembership
from sso.services import mapping_create, mapping_delete, mapping_update, memberships_sync

User = get_user_model()
ISSUER = "https://id.example.com"


def claims(sub: str = "s-1", email: str = "dave@example.com", verified=True, **more) -> dict:
    return {"sub": sub, "email": email, "email_verified": verified, **more}


def events(org, n: int) -> list[tuple[str, str]]:
    rows = ActivityEvent.objects.filter(org=org).order_by("-seq")[:n]
    return [(event.verb, event.actor_name) for event in reversed(rows)]


def team_members(org, name: str) -> set[str]:
    team = Team.objects.get(org=org, name=name)
    return set(team.group.user_set.values_list("username", flat=True))


@pytest.fixture
def teams(admin, acme) -> dict[str, Team]:
    return {name: team_create(actor=admin, org=acme, name=name) for name in ("risk", "growth")}


@pytest.fixture
def dave(db):
    return account_for_login(issuer=ISSUER, claims=claims())


# Mappings


def test_it_makes_changes_and_deletes_a_mapping_with_events(admin, acme, teams):
    mapping = mapping_create(actor=admin, org=acme, group=" ml ", teams=[teams["risk"]])
    assert (mapping.group, mapping.role) == ("ml", "member")
    event = ActivityEvent.objects.filter(org=acme).order_by("-seq").first()
    assert (event.verb, event.target_type, event.actor_name) == (
        "sso_mapping.created",
        "sso_mapping",
        "admin",
    )
    assert event.changes["teams"] == [None, ["risk"]]

    mapping_update(actor=admin, mapping=mapping, group="ml", role="admin", teams=[teams["growth"]])
    event = ActivityEvent.objects.filter(org=acme).order_by("-seq").first()
    assert event.verb == "sso_mapping.updated"
    assert event.changes == {"role": ["member", "admin"], "teams": [["risk"], ["growth"]]}
    seq = event.seq
    mapping_update(actor=admin, mapping=mapping, group="ml", role="admin", teams=[teams["growth"]])
    assert ActivityEvent.objects.filter(org=acme).order_by("-seq").first().seq == seq

    mapping_delete(actor=admin, mapping=mapping)
    assert not GroupMapping.objects.exists()
    assert ActivityEvent.objects.filter(org=acme).order_by("-seq").first().verb == (
        "sso_mapping.deleted"
    )


@pytest.mark.parametrize(
    ("group", "role", "error"),
    [("", "member", Invalid), ("x" * 201, "member", Invalid), ("ml", "owner", Invalid)],
)
def test_it_refuses_a_bad_mapping_and_changes_nothing(admin, acme, group, role, error):
    count = ActivityEvent.objects.filter(org=acme).count()
    with pytest.raises(error):
        mapping_create(actor=admin, org=acme, group=group, role=role)
    assert not GroupMapping.objects.exists()
    assert ActivityEvent.objects.filter(org=acme).count() == count


def test_it_refuses_another_orgs_team_a_second_mapping_of_a_group_and_non_admins(
    admin, mallory, alice, acme, globex
):
    theirs = team_create(actor=mallory, org=globex, name="theirs")
    with pytest.raises(Invalid, match="teams of acme"):
        mapping_create(actor=admin, org=acme, group="ml", teams=[theirs])
    mapping_create(actor=admin, org=acme, group="ml")
    with pytest.raises(Conflict):
        mapping_create(actor=admin, org=acme, group="ml")
    with pytest.raises(Forbidden):
        mapping_create(actor=alice, org=acme, group="other")
    with pytest.raises(NotFound):  # mallory is no member of acme
        mapping_create(actor=mallory, org=acme, group="other")
    assert GroupMapping.objects.count() == 1


# What a login does


def test_a_second_login_updates_the_role_and_the_teams(admin, acme, teams, dave):
    mapping_create(actor=admin, org=acme, group="ml", teams=[teams["risk"]])
    mapping_create(actor=admin, org=acme, group="ml-leads", role="admin", teams=[teams["growth"]])
    memberships_sync(user=dave, groups=["ml"])
    assert Membership.objects.get(org=acme, user=dave).role == Role.MEMBER
    assert "dave" in team_members(acme, "risk") and "dave" not in team_members(acme, "growth")
    assert events(acme, 2) == [("membership.created", ""), ("team.updated", "")]

    memberships_sync(user=dave, groups=["ml-leads"])
    assert Membership.objects.get(org=acme, user=dave).role == Role.ADMIN
    assert "dave" not in team_members(acme, "risk") and "dave" in team_members(acme, "growth")
    assert [verb for verb, _ in events(acme, 3)] == [
        "membership.updated",
        "team.updated",
        "team.updated",
    ]


def test_a_login_leaves_teams_no_mapping_names_alone(admin, acme, teams, dave):
    mapping_create(actor=admin, org=acme, group="ml", teams=[teams["risk"]])
    memberships_sync(user=dave, groups=["ml"])
    team_set_members(actor=admin, team=teams["growth"], users=[dave])  # by hand
    memberships_sync(user=dave, groups=["ml"])
    assert "dave" in team_members(acme, "growth")


def test_a_login_without_the_group_removes_the_managed_membership(admin, acme, globex, dave):
    mapping_create(actor=admin, org=acme, group="ml")
    memberships_sync(user=dave, groups=["ml"])
    memberships_sync(user=dave, groups=["something-else"])
    assert not Membership.objects.filter(user=dave).exists()
    assert not ManagedMembership.objects.exists()
    assert events(acme, 1) == [("membership.deleted", "")]


def test_a_deleted_mapping_takes_the_membership_at_the_next_login(admin, acme, dave):
    mapping = mapping_create(actor=admin, org=acme, group="ml")
    memberships_sync(user=dave, groups=["ml"])
    mapping_delete(actor=admin, mapping=mapping)
    assert Membership.objects.filter(user=dave).exists()
    memberships_sync(user=dave, groups=["ml"])
    assert not Membership.objects.filter(user=dave).exists()


def test_a_login_never_changes_or_removes_a_membership_made_by_hand(admin, acme, teams, carol):
    mapping_create(actor=admin, org=acme, group="ml", role="admin", teams=[teams["risk"]])
    memberships_sync(user=carol, groups=["ml"])
    assert Membership.objects.get(org=acme, user=carol).role == Role.MEMBER
    assert "carol" not in team_members(acme, "risk")
    memberships_sync(user=carol, groups=[])
    assert Membership.objects.filter(org=acme, user=carol).exists()


def test_an_admin_removing_a_managed_member_ends_the_management(admin, acme, dave):
    mapping_create(actor=admin, org=acme, group="ml")
    memberships_sync(user=dave, groups=["ml"])
    membership_remove(actor=admin, org=acme, user=dave)
    assert not ManagedMembership.objects.exists()
    memberships_sync(user=dave, groups=["ml"])  # the mapping still says so: back again
    assert ManagedMembership.objects.filter(membership__user=dave).exists()


def test_a_login_never_takes_the_last_admin_away(globex, mallory, dave):
    mapping_create(actor=mallory, org=globex, group="globex-admins", role="admin")
    memberships_sync(user=dave, groups=["globex-admins"])
    membership_remove(actor=dave, org=globex, user=mallory)
    memberships_sync(user=dave, groups=[])  # refused (last admin), logged, login goes on
    assert Membership.objects.get(org=globex, user=dave).role == Role.ADMIN


# Which account a login is


def test_it_makes_an_account_on_a_verified_first_login(db):
    user = account_for_login(
        issuer=ISSUER,
        claims=claims(preferred_username="dave smith", given_name="Dave", family_name="Smith"),
    )
    assert (user.username, user.first_name, user.last_name) == ("davesmith", "Dave", "Smith")
    assert not user.has_usable_password()
    assert Identity.objects.get(user=user).subject == "s-1"


@pytest.mark.parametrize("verified", [False, None, "false", "yes"])
def test_it_refuses_an_unverified_address_and_makes_nothing(db, alice, verified):
    with pytest.raises(Forbidden, match="not verified"):
        account_for_login(issuer=ISSUER, claims=claims(email=alice.email, verified=verified))
    with pytest.raises(Forbidden, match="not verified"):
        account_for_login(issuer=ISSUER, claims=claims(verified=verified))
    assert not Identity.objects.exists()
    assert not User.objects.filter(email="dave@example.com").exists()


def test_it_finds_the_subject_whatever_the_address_says(db, dave):
    found = account_for_login(
        issuer=ISSUER, claims=claims(email="dave@new.example.com", verified=False)
    )
    assert found == dave and found.email == "dave@example.com"  # unverified: not copied
    found = account_for_login(issuer=ISSUER, claims=claims(email="dave@new.example.com"))
    assert found == dave and found.email == "dave@new.example.com"
    # The same subject at another issuer is someone else.
    other = account_for_login(issuer="https://other.example.com", claims=claims(email="x@ex.com"))
    assert other != dave


def test_it_links_by_verified_address_but_never_a_superuser(db, alice, root):
    assert account_for_login(issuer=ISSUER, claims=claims(email="ALICE@example.com")) == alice
    with pytest.raises(Forbidden, match="local account"):
        account_for_login(issuer=ISSUER, claims=claims(sub="s-2", email=root.email))
    with pytest.raises(Conflict, match="another identity"):
        account_for_login(issuer=ISSUER, claims=claims(sub="s-3", email=alice.email))


def test_it_gives_a_new_account_a_free_username(db, alice):
    user = account_for_login(
        issuer=ISSUER, claims=claims(email="al@example.com", preferred_username="alice")
    )
    assert user.username == "alice-2"


def test_it_refuses_groups_it_cannot_read_before_anything_changes(admin, acme, dave):
    assert groups_of({"groups": "ml"}, "groups") == ["ml"]
    assert groups_of({}, "groups") == []
    with pytest.raises(Invalid, match="list of group names"):
        groups_of({"groups": {"ml": True}}, "groups")


def test_a_deactivated_account_signs_in_no_more(admin, acme, dave):
    dave.is_active = False
    dave.save()
    mapping_create(actor=admin, org=acme, group="ml")
    with pytest.raises(Forbidden, match="deactivated"):
        login_complete(issuer=ISSUER, claims=claims(), groups=["ml"])
    assert not Membership.objects.filter(user=dave).exists()
