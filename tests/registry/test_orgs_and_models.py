"""Organizations, memberships, teams and models (SPEC 2, 3.1), and the identity rules of
versions: labels, numbers and lineage."""

import pytest
from django.contrib.auth import get_user_model

from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import (
    ActivityChain,
    ActivityEvent,
    LockLevel,
    Membership,
    ModelVersion,
    Organization,
    RegisteredModel,
    Role,
    Team,
    VersionSequence,
    Visibility,
)
from registry.permissions import Access, model_access
from registry.services.orgs import (
    membership_remove,
    membership_set,
    org_create,
    org_update,
    team_create,
    team_delete,
    team_set_members,
)
from registry.services.registered_models import (
    model_create,
    model_delete,
    model_grant,
    model_update,
)
from registry.services.versions import version_create, version_delete, version_update

pytestmark = pytest.mark.django_db


def role_of(org, user) -> str | None:
    return Membership.objects.filter(org=org, user=user).values_list("role", flat=True).first()


@pytest.fixture
def dave(db):
    return get_user_model().objects.create_user("dave", "dave@example.com")


# --- organizations --------------------------------------------------------------------------


def test_it_lets_a_superuser_create_an_org_with_its_first_admin(root, dave):
    org = org_create(actor=root, slug="initech", name=" Initech ", admin=dave, required_approvals=2)
    assert (org.name, org.required_approvals, org.default_lock_level) == ("Initech", 2, "open")
    assert role_of(org, dave) == Role.ADMIN
    assert ActivityChain.objects.get(org=org).seq == 1
    assert ActivityEvent.objects.get(org=org).verb == "org.created"


def test_it_refuses_org_creation_to_everyone_else(admin, dave):
    with pytest.raises(Forbidden, match="only a superuser may create an organization"):
        org_create(actor=admin, slug="initech", name="Initech", admin=dave)
    assert not Organization.objects.filter(slug="initech").exists()


def test_it_refuses_an_invalid_org_slug(root, subtests):
    for slug in ("", "Acme2", "-acme", "a_b", "a" * 64, "a b"):
        with subtests.test(slug=slug):
            with pytest.raises(Invalid, match="organization slug"):
                org_create(actor=root, slug=slug, name="X")
            assert not Organization.objects.exists()


def test_it_refuses_a_taken_org_slug(acme, root):
    with pytest.raises(Conflict, match="organization acme already exists"):
        org_create(actor=root, slug="acme", name="Another Acme")


def test_it_refuses_invalid_org_settings(acme, admin, subtests):
    events = ActivityEvent.objects.count()
    for changes, rule in (
        ({"colour": "red"}, "unknown organization settings"),
        ({"name": "  "}, "name must be a non-empty string"),
        ({"default_lock_level": "sealed"}, "default_lock_level must be one of"),
        ({"required_approvals": 0}, "required_approvals must be a whole number from 1 to 20"),
        ({"required_approvals": 21}, "required_approvals must be a whole number from 1 to 20"),
        ({"required_approvals": True}, "required_approvals must be a whole number from 1 to 20"),
        ({"closed_is_final": "yes"}, "closed_is_final must be true or false"),
    ):
        with subtests.test(changes=changes):
            with pytest.raises(Invalid, match=rule):
                org_update(actor=admin, org=acme, **changes)
            acme.refresh_from_db()
            assert (acme.name, acme.default_lock_level, acme.required_approvals) == (
                "Acme Corp",
                "open",
                1,
            )
            assert ActivityEvent.objects.count() == events


def test_it_leaves_org_settings_to_its_admins(acme, alice, mallory):
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        org_update(actor=alice, org=acme, required_approvals=3)
    with pytest.raises(NotFound, match="organization acme not found"):
        org_update(actor=mallory, org=acme, required_approvals=3)
    acme.refresh_from_db()
    assert acme.required_approvals == 1


# --- memberships ----------------------------------------------------------------------------


def test_it_adds_members_and_changes_roles(acme, admin, dave):
    membership_set(actor=admin, org=acme, user=dave)
    assert role_of(acme, dave) == Role.MEMBER
    membership_set(actor=admin, org=acme, user=dave, role=Role.ADMIN)
    assert role_of(acme, dave) == Role.ADMIN
    assert model_access(dave, model_create(actor=admin, org=acme, name="m")).admin


def test_it_never_removes_or_demotes_the_last_admin(acme, admin, root, globex, mallory):
    for org, last in ((acme, admin), (globex, mallory)):
        for actor in (last, root):
            with pytest.raises(Conflict, match=f"{last.username} is the last admin of {org.slug}"):
                membership_set(actor=actor, org=org, user=last, role=Role.MEMBER)
            with pytest.raises(Conflict, match=f"{last.username} is the last admin of {org.slug}"):
                membership_remove(actor=actor, org=org, user=last)
        assert role_of(org, last) == Role.ADMIN


def test_it_lets_an_admin_step_down_once_another_admin_exists(acme, admin, bob):
    membership_set(actor=admin, org=acme, user=bob, role=Role.ADMIN)
    membership_set(actor=bob, org=acme, user=admin, role=Role.MEMBER)
    assert role_of(acme, admin) == Role.MEMBER
    membership_remove(actor=bob, org=acme, user=admin)
    assert role_of(acme, admin) is None
    with pytest.raises(Conflict, match="bob is the last admin of acme"):
        membership_remove(actor=bob, org=acme, user=bob)


def test_it_leaves_memberships_to_org_admins(acme, alice, mallory, dave):
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        membership_set(actor=alice, org=acme, user=dave)
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        membership_remove(actor=alice, org=acme, user=alice)
    with pytest.raises(NotFound, match="organization acme not found"):
        membership_set(actor=mallory, org=acme, user=mallory, role=Role.ADMIN)
    assert role_of(acme, dave) is None
    assert role_of(acme, mallory) is None


def test_it_refuses_invalid_memberships(acme, admin, dave, carol):
    with pytest.raises(Invalid, match="role must be one of"):
        membership_set(actor=admin, org=acme, user=dave, role="owner")
    dave.is_active = False
    dave.save()
    with pytest.raises(Invalid, match="user dave is inactive"):
        membership_set(actor=admin, org=acme, user=dave)
    assert role_of(acme, dave) is None
    with pytest.raises(NotFound, match="dave is not a member of acme"):
        membership_remove(actor=admin, org=acme, user=dave)


def test_it_takes_a_removed_member_out_of_the_org_teams(acme, admin, carol, bob):
    team = team_create(actor=admin, org=acme, name="risk")
    team_set_members(actor=admin, team=team, users=[carol, bob])
    membership_remove(actor=admin, org=acme, user=carol)
    assert list(team.group.user_set.values_list("username", flat=True)) == ["bob"]


# --- teams ----------------------------------------------------------------------------------


def test_it_keeps_team_names_unique_per_org(acme, globex, admin, mallory):
    team_create(actor=admin, org=acme, name="risk")
    with pytest.raises(Conflict, match="team risk already exists in acme"):
        team_create(actor=admin, org=acme, name="risk")
    # Another org may have its own "risk": groups are named per org.
    other = team_create(actor=mallory, org=globex, name="risk")
    assert other.group.name == "globex/risk"
    assert Team.objects.filter(name="risk").count() == 2


def test_it_refuses_an_invalid_team_name(acme, admin, subtests):
    for name in ("", "   ", "x" * 101, None):
        with subtests.test(name=name):
            with pytest.raises(Invalid, match="team name must be 1-100 characters"):
                team_create(actor=admin, org=acme, name=name)
            assert not Team.objects.exists()


def test_it_leaves_teams_to_org_admins(acme, admin, alice, mallory):
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        team_create(actor=alice, org=acme, name="risk")
    with pytest.raises(NotFound, match="organization acme not found"):
        team_create(actor=mallory, org=acme, name="risk")
    team = team_create(actor=admin, org=acme, name="risk")
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        team_set_members(actor=alice, team=team, users=[alice])
    with pytest.raises(NotFound, match="organization acme not found"):
        team_delete(actor=mallory, team=team)
    assert list(team.group.user_set.all()) == []


def test_it_only_puts_org_members_in_a_team(acme, admin, carol, mallory):
    team = team_create(actor=admin, org=acme, name="risk")
    team_set_members(actor=admin, team=team, users=[carol])
    with pytest.raises(Invalid, match="not members of acme: mallory"):
        team_set_members(actor=admin, team=team, users=[carol, mallory])
    assert list(team.group.user_set.values_list("username", flat=True)) == ["carol"]


def test_it_refuses_to_grant_to_another_orgs_team(model, admin, globex, mallory):
    team = team_create(actor=mallory, org=globex, name="spies")
    with pytest.raises(Invalid, match="team globex/spies does not belong to acme"):
        model_grant(actor=admin, model=model, permission="view", team=team)


def test_it_takes_a_deleted_teams_grants_with_it(acme, admin, carol):
    secret = model_create(actor=admin, org=acme, name="secret", visibility=Visibility.PRIVATE)
    team = team_create(actor=admin, org=acme, name="risk")
    team_set_members(actor=admin, team=team, users=[carol])
    model_grant(actor=admin, model=secret, permission="write", team=team)
    assert model_access(carol, secret).write
    team_delete(actor=admin, team=team)
    assert model_access(carol, secret) == Access()


# --- registered models ----------------------------------------------------------------------


def test_it_refuses_an_invalid_model_name(acme, alice, subtests):
    for name in ("", "-fraud", ".fraud", "_fraud", "fraud scores", "a/b", "x" * 129, "früd", None):
        with subtests.test(name=name):
            with pytest.raises(Invalid, match="model name .* is invalid"):
                model_create(actor=alice, org=acme, name=name)
            assert not RegisteredModel.objects.exists()


def test_it_accepts_valid_model_names(acme, alice):
    names = ["a", "7", "Fraud.v2_final-1", "x" * 128]
    for name in names:
        model_create(actor=alice, org=acme, name=name)
    assert sorted(RegisteredModel.objects.values_list("name", flat=True)) == sorted(names)


def test_it_keeps_model_names_unique_per_org(model, acme, globex, alice, mallory):
    with pytest.raises(Conflict, match="model fraud already exists in acme"):
        model_create(actor=alice, org=acme, name="fraud")
    churn = model_create(actor=alice, org=acme, name="churn")
    with pytest.raises(Conflict, match="model fraud already exists in acme"):
        model_update(actor=alice, model=churn, name="fraud")
    with pytest.raises(Invalid, match="model name 'no way' is invalid"):
        model_update(actor=alice, model=churn, name="no way")
    assert RegisteredModel.objects.get(pk=churn.pk).name == "churn"
    assert model_create(actor=mallory, org=globex, name="fraud").org == globex


def test_it_gives_the_creator_every_permission_on_their_model(acme, carol, bob):
    own = model_create(actor=carol, org=acme, name="carols", visibility=Visibility.PRIVATE)
    assert model_access(carol, own) == Access(view=True, write=True, approve=True)
    assert own.owner == carol
    assert model_access(bob, own) == Access()


def test_it_lets_members_only_create_models_in_their_org(acme, mallory):
    with pytest.raises(NotFound, match="organization acme not found"):
        model_create(actor=mallory, org=acme, name="x")


@pytest.mark.parametrize(
    ("field", "value"),
    [("visibility", Visibility.PRIVATE), ("required_approvals", 2), ("owner", "bob")],
)
def test_it_leaves_governance_to_the_owner_or_an_admin(
    request, model, acme, alice, carol, admin, field, value
):
    value = request.getfixturevalue(value) if field == "owner" else value
    with pytest.raises(Forbidden, match=f"changing {field} needs the model's owner or an org"):
        model_update(actor=alice, model=model, **{field: value})
    assert getattr(RegisteredModel.objects.get(pk=model.pk), field) != value
    # Free fields are the writer's; a governance field given unchanged is no change.
    model_update(actor=alice, model=model, description="new", **{field: getattr(model, field)})
    # The owner may, and so may an org admin.
    own = model_create(actor=carol, org=acme, name="carols")
    model_update(actor=carol, model=own, **{field: value})
    model_update(actor=admin, model=model, **{field: value})
    assert getattr(RegisteredModel.objects.get(pk=own.pk), field) == value
    assert getattr(RegisteredModel.objects.get(pk=model.pk), field) == value


def test_it_keeps_model_owners_inside_the_org(model, admin, mallory):
    with pytest.raises(Invalid, match="the owner must be a member of acme"):
        model_update(actor=admin, model=model, owner=mallory)
    assert RegisteredModel.objects.get(pk=model.pk).owner == admin


def test_it_leaves_sharing_and_deleting_to_the_owner_or_an_admin(model, alice, carol):
    with pytest.raises(Forbidden, match="sharing a model needs its owner or an org admin"):
        model_grant(actor=alice, model=model, permission="write", user=carol)
    with pytest.raises(Forbidden, match="deleting a model needs its owner or an org admin"):
        model_delete(actor=alice, model=model)
    with pytest.raises(Forbidden, match="do not have write permission on model fraud"):
        model_delete(actor=carol, model=model)
    assert not model_access(carol, model).write
    assert RegisteredModel.objects.filter(pk=model.pk).exists()


# --- versions: labels, numbers, lineage -----------------------------------------------------


def test_it_refuses_a_label_that_is_not_semver(model, alice, subtests):
    version = version_create(actor=alice, model=model)
    for label in ("1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0.0", "", 1, "x"):
        with subtests.test(label=label):
            with pytest.raises(Invalid, match="is not a semantic version"):
                version_create(actor=alice, model=model, label=label)
            with pytest.raises(Invalid, match="is not a semantic version"):
                version_update(actor=alice, version=version, label=label)
            assert list(model.versions.values_list("number", "label")) == [(1, None)]


def test_it_accepts_semver_labels(model, alice):
    labels = ["0.0.0", "1.4.0", "2.0.0-rc.1", "1.0.0+build.7"]
    for label in labels:
        version_create(actor=alice, model=model, label=label)
    assert sorted(model.versions.values_list("label", flat=True)) == sorted(labels)


def test_it_keeps_labels_unique_per_model(model, acme, alice):
    version_create(actor=alice, model=model, label="1.0.0")
    with pytest.raises(Conflict, match="label 1.0.0 is already used by another version of fraud"):
        version_create(actor=alice, model=model, label="1.0.0")
    unlabelled = version_create(actor=alice, model=model)
    with pytest.raises(Conflict, match="label 1.0.0 is already used"):
        version_update(actor=alice, version=unlabelled, label="1.0.0")
    # Another model may use the same label.
    churn = model_create(actor=alice, org=acme, name="churn")
    assert version_create(actor=alice, model=churn, label="1.0.0").label == "1.0.0"


def test_it_sets_a_label_once_and_never_changes_it(model, alice, admin):
    version = version_create(actor=alice, model=model)
    version_update(actor=alice, version=version, label="1.0.0")
    for actor in (alice, admin):
        for label in ("1.0.1", None):
            with pytest.raises(Invalid, match="label 1.0.0 is immutable once set"):
                version_update(actor=actor, version=version, label=label)
    version_update(actor=alice, version=version, label="1.0.0")  # the same label: no change
    stale = ModelVersion.objects.get(pk=version.pk)
    stale.label = "9.9.9"
    with pytest.raises(Invalid, match="label 1.0.0 is immutable once set"):
        stale.save()
    assert ModelVersion.objects.get(pk=version.pk).label == "1.0.0"


def test_it_never_reuses_a_version_number(model, alice):
    versions = [version_create(actor=alice, model=model) for _ in range(3)]
    assert [v.number for v in versions] == [1, 2, 3]
    version_delete(actor=alice, version=versions[2])
    version_delete(actor=alice, version=versions[1])
    assert version_create(actor=alice, model=model).number == 4
    version_delete(actor=alice, version=versions[0])
    assert version_create(actor=alice, model=model).number == 5
    assert sorted(model.versions.values_list("number", flat=True)) == [4, 5]


def test_it_registers_nothing_on_a_model_deleted_since_it_was_read(model, alice):
    # The number sequence goes with its model; a registration that finds none is a 404.
    events = ActivityEvent.objects.count()
    VersionSequence.objects.filter(model=model).delete()
    with pytest.raises(NotFound, match="model fraud not found"):
        version_create(actor=alice, model=model)
    assert not model.versions.exists()
    assert ActivityEvent.objects.count() == events


def test_it_refuses_to_delete_a_version_with_children(model, acme, alice, admin):
    parent = version_create(actor=alice, model=model)
    version_create(actor=alice, model=model, parents=[parent])
    churn = model_create(actor=alice, org=acme, name="churn")
    version_create(actor=alice, model=churn, parents=[parent])
    events = ActivityEvent.objects.count()
    for actor in (alice, admin):
        with pytest.raises(Conflict, match="v\\d descends from version 1: it cannot be deleted"):
            version_delete(actor=actor, version=parent)
    with pytest.raises(Conflict, match="churn v1 descends from this model: delete it first"):
        model_delete(actor=admin, model=model)
    assert ModelVersion.objects.filter(pk=parent.pk).exists()
    assert ActivityEvent.objects.count() == events


def test_it_deletes_a_model_with_lineage_inside_it(model, admin, alice):
    parent = version_create(actor=alice, model=model)
    version_create(actor=alice, model=model, parents=[parent])
    model_delete(actor=admin, model=model)
    assert not ModelVersion.objects.exists()


def test_it_only_takes_parents_the_actor_may_view_in_the_org(
    model, acme, globex, admin, alice, mallory
):
    rockets = model_create(actor=mallory, org=globex, name="rockets")
    foreign = version_create(actor=mallory, model=rockets)
    secret = model_create(actor=admin, org=acme, name="secret", visibility=Visibility.PRIVATE)
    hidden = version_create(actor=admin, model=secret)
    for parent in (foreign, hidden):
        with pytest.raises(NotFound, match="parent version not found"):
            version_create(actor=alice, model=model, parents=[parent])
    assert not model.versions.exists()
    version = version_create(actor=alice, model=model)
    with pytest.raises(Invalid, match="a version cannot be its own parent"):
        version_update(actor=alice, version=version, parents=[version])


def test_it_refuses_fields_a_version_edit_may_not_set(model, alice, subtests):
    version = version_create(actor=alice, model=model)
    for changes, rule in (
        ({"stage": "production"}, "stage changes only through an approved stage change"),
        ({"lock_level": LockLevel.OPEN}, "lock level changes through version_set_lock_level"),
        ({"digest": "sha256:" + "0" * 64}, "the digest is derived from the ingredients"),
        ({"number": 7}, "version numbers are given by the registry"),
        ({"colour": "red"}, "unknown version fields"),
    ):
        with subtests.test(changes=changes):
            with pytest.raises(Invalid, match=rule):
                version_update(actor=alice, version=version, **changes)
            fresh = ModelVersion.objects.get(pk=version.pk)
            assert (fresh.stage, fresh.number, fresh.digest) == ("unassigned", 1, version.digest)


def test_it_registers_only_on_an_existing_branch(model, alice):
    with pytest.raises(Invalid, match="branch experiment does not exist on model fraud"):
        version_create(actor=alice, model=model, branch="experiment")
    assert version_create(actor=alice, model=model).branch.name == "main"


def test_it_checks_ownership_as_stored_not_as_the_callers_instance(acme, admin, alice, bob, carol):
    churn = model_create(actor=alice, org=acme, name="churn")
    model_update(actor=admin, model=churn, owner=bob)
    assert churn.owner == alice  # the caller's instance is stale
    with pytest.raises(Forbidden, match="sharing a model needs its owner or an org admin"):
        model_grant(actor=alice, model=churn, permission="write", user=carol)
    with pytest.raises(Forbidden, match="deleting a model needs its owner or an org admin"):
        model_delete(actor=alice, model=churn)
    assert RegisteredModel.objects.filter(pk=churn.pk).exists()
    assert not model_access(carol, churn).write


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["nul\x00byte", "lone\ud800surrogate"])
def test_it_refuses_text_no_database_can_store_on_every_service(cast, model, alice, text):
    """PostgreSQL refuses NUL in text; a lone surrogate is not UTF-8. Each is a clear Invalid
    from the domain, whatever the surface, never a database error."""
    from approvals.services import request_create
    from registry.services.comments import comment_add
    from registry.services.orgs import team_create
    from registry.services.versions import version_create

    calls = [
        lambda: comment_add(actor=alice, model=model, body=text),
        lambda: model_update(actor=alice, model=model, description=text),
        lambda: model_update(actor=alice, model=model, tags={"team": text}),
        lambda: version_create(actor=alice, model=model, params={"opt": text}),
        lambda: version_create(actor=alice, model=model, metrics={text: 1.0}),
        lambda: team_create(actor=cast.admin, org=cast.acme, name=text),
    ]
    for call in calls:
        with pytest.raises(Invalid, match="NUL|surrogate"):
            call()
    version = version_create(actor=alice, model=model)
    with pytest.raises(Invalid, match="NUL|surrogate"):
        request_create(actor=alice, version=version, to_stage="staging", comment=text)
