"""Each plain statement of registry.sql answers what the queryset it stands for answers, down
to the type of every column of every instance it makes (on the database the suite runs on:
SQLite, then PostgreSQL in CI)."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from registry import sql
from registry.models import (
    ApiToken,
    Branch,
    Membership,
    ModelVersion,
    Organization,
    RegisteredModel,
)
from registry.services.aliases import alias_set
from registry.services.branches import branch_create
from registry.services.orgs import team_create, team_set_members
from registry.services.registered_models import model_create, model_grant, model_update
from registry.services.tokens import token_create, token_hash, token_revoke
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


def columns(instance) -> dict:
    """Every stored column of `instance`, with its value's type: 1 is not True, nor a hex
    string a UUID, nor a naive time an aware one."""
    fields = [f for f in instance._meta.get_fields() if f.concrete and not f.many_to_many]
    assert fields
    values = {f.attname: getattr(instance, f.attname) for f in fields}
    return {name: (type(value), value) for name, value in values.items()}


def assert_same(found, expected) -> None:
    assert type(found) is type(expected)
    assert columns(found) == columns(expected)


def test_a_token_is_read_with_its_user_as_the_queryset_reads_it(alice, root):
    token, raw = token_create(
        actor=alice, user=alice, name="ci", expires_at=timezone.now() + timedelta(days=3)
    )
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    token_revoke(actor=root, token=token)
    expected = ApiToken.objects.select_related("user").get(pk=token.pk)
    found = sql.token_with_user(token_hash(raw))
    assert_same(found, expected)
    assert_same(found.user, expected.user)
    assert found.revoked_at is not None and found.expires_at is not None
    assert sql.token_with_user(token_hash(raw + "x")) is None


@pytest.mark.parametrize("who", ["admin", "alice", "mallory", "root"])
def test_an_org_is_read_with_the_callers_role(request, cast, acme, who):
    user = request.getfixturevalue(who)
    org, role = sql.org_with_role(user.pk, "acme")
    assert_same(org, Organization.objects.get(slug="acme"))
    assert (
        role
        == Membership.objects.filter(user=user, org=acme).values_list("role", flat=True).first()
    )
    assert sql.org_with_role(user.pk, "nowhere") is None


@pytest.fixture
def granted(acme, globex, admin, alice, bob, mallory):
    """A private model owned by bob, with write granted to alice herself and approve to a
    team of hers, beside a model of the same name in another org."""
    model = model_create(actor=admin, org=acme, name="granted", visibility="private")
    model = model_update(actor=admin, model=model, owner=bob)
    model_create(actor=mallory, org=globex, name="granted")
    team = team_create(actor=admin, org=acme, name="reviewers")
    team_set_members(actor=admin, team=team, users=[alice])
    model_grant(actor=admin, model=model, permission="write", user=alice)
    model_grant(actor=admin, model=model, permission="approve", team=team)
    return model


def bits_of(user, model) -> int:
    """The words granted on `model` to `user` or their teams, as registry.sql.BITS says them,
    read through the ORM."""
    codenames = set(
        Permission.objects.filter(
            modeluserpermission__user=user, modeluserpermission__content_object=model
        ).values_list("codename", flat=True)
    ) | set(
        Permission.objects.filter(
            modelgrouppermission__group__user=user, modelgrouppermission__content_object=model
        ).values_list("codename", flat=True)
    )
    return sum(bit for word, bit in sql.BITS.items() if f"{word}_registeredmodel" in codenames)


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "mallory"])
def test_a_model_is_read_with_its_org_owner_creator_and_the_callers_access(
    request, granted, acme, who
):
    user = request.getfixturevalue(who)
    expected = RegisteredModel.objects.select_related("org", "owner", "created_by").get(
        pk=granted.pk
    )
    found, role, bits, branch = sql.model_with_access(user.pk, "acme", "granted")
    assert branch is None
    assert_same(found, expected)
    for related in ("org", "owner", "created_by"):
        assert_same(getattr(found, related), getattr(expected, related))
    assert (
        role
        == Membership.objects.filter(user=user, org=acme).values_list("role", flat=True).first()
    )
    assert bits == bits_of(user, granted)
    if who == "alice":
        assert bits == sql.BITS["write"] | sql.BITS["approve"]
    assert sql.model_access(user.pk, granted.pk) == (granted.visibility, role, bits)
    assert sql.model_with_access(user.pk, "globex", "granted")[0].org.slug == "globex"
    assert sql.model_with_access(user.pk, "acme", "absent") is None
    assert sql.model_access(user.pk, 0) is None


def test_what_a_fetch_makes_saves_as_the_stored_row_it_is(granted, admin):
    """Instances made from a row are the stored rows (Model.from_db): a service that saves
    one updates it, and inserts nothing."""
    found, *_ = sql.model_with_access(admin.pk, "acme", "granted")
    before = RegisteredModel.objects.count()
    model_update(actor=admin, model=found, description="read by registry.sql")
    assert RegisteredModel.objects.count() == before
    assert RegisteredModel.objects.get(pk=granted.pk).description == "read by registry.sql"


def test_a_model_without_owner_or_creator_reads_them_as_none(acme, admin):
    model = model_create(actor=admin, org=acme, name="orphan")
    RegisteredModel.objects.filter(pk=model.pk).update(owner=None, created_by=None)
    found, _, _, _ = sql.model_with_access(admin.pk, "acme", "orphan")
    assert found.owner is None and found.created_by is None
    assert_same(found, RegisteredModel.objects.get(pk=model.pk))


def test_a_model_is_read_for_registration_with_its_branch(granted, alice):
    branch_create(actor=alice, model=granted, name="exp")
    found, role, bits, branch = sql.model_with_access(alice.pk, "acme", "granted", "exp")
    assert_same(found, RegisteredModel.objects.get(pk=granted.pk))
    assert_same(found.org, granted.org)
    assert_same(branch, Branch.objects.get(model=granted, name="exp"))
    assert branch.model is found
    assert (role, bits) == sql.model_with_access(alice.pk, "acme", "granted")[1:3]
    *_, absent = sql.model_with_access(alice.pk, "acme", "granted", "nowhere")
    assert absent is None
    assert sql.model_with_access(alice.pk, "acme", "absent", "main") is None


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_a_version_is_read_with_its_model_org_branch_creator_and_the_callers_access(
    request, granted, admin, who
):
    user = request.getfixturevalue(who)
    version_create(actor=admin, model=granted)
    made = version_create(
        actor=admin,
        model=granted,
        label="2.0.0",
        tags={"team": "risk"},
        params={"seed": 2**70, "rate": 0.5},
        metrics={"auc": 0.9},
        datasets=[{"name": "cards"}],
    )
    expected = ModelVersion.objects.select_related("model__org", "branch", "created_by").get(
        pk=made.pk
    )
    found, role, bits = sql.version_with_access(user.pk, "acme", "granted", 2)
    assert_same(found, expected)
    for related in ("model", "branch", "created_by"):
        assert_same(getattr(found, related), getattr(expected, related))
    assert_same(found.model.org, expected.model.org)
    assert found.params["seed"] == 2**70
    assert (role, bits) == sql.model_with_access(user.pk, "acme", "granted")[1:3]
    by_id, *access = sql.version_by_id_with_access(user.pk, made.pk)
    assert_same(by_id, found)
    for related in ("model", "branch", "created_by"):
        assert_same(getattr(by_id, related), getattr(expected, related))
    assert_same(by_id.model.org, expected.model.org)
    assert access == [role, bits]
    assert sql.version_by_id_with_access(user.pk, uuid.uuid4()) is None
    assert sql.version_with_access(user.pk, "acme", "granted", 3) is None
    assert sql.version_with_access(user.pk, "globex", "granted", 1) is None


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_a_version_is_read_by_its_alias_as_the_queryset_reads_it(
    request, granted, admin, mallory, who
):
    user = request.getfixturevalue(who)
    first = version_create(actor=admin, model=granted)
    version_create(actor=admin, model=granted)
    alias_set(actor=admin, model=granted, name="champion", version=first)
    # The same alias on the model of the same name in another org, at its own version.
    other = RegisteredModel.objects.get(org__slug="globex", name="granted")
    theirs = version_create(actor=mallory, model=other)
    alias_set(actor=mallory, model=other, name="champion", version=theirs)
    expected = (
        ModelVersion.objects.select_related("model__org", "branch", "created_by")
        .filter(model=granted, aliases__model=granted, aliases__name="champion")
        .get()
    )
    assert expected.pk == first.pk
    found, *access = sql.version_by_alias_with_access(user.pk, "acme", "granted", "champion")
    assert_same(found, expected)
    for related in ("model", "branch", "created_by"):
        assert_same(getattr(found, related), getattr(expected, related))
    assert_same(found.model.org, expected.model.org)
    assert access == list(sql.model_with_access(user.pk, "acme", "granted")[1:3])
    elsewhere, *_ = sql.version_by_alias_with_access(user.pk, "globex", "granted", "champion")
    assert elsewhere.model.org.slug == "globex" and elsewhere.model_id == other.pk
    assert sql.version_by_alias_with_access(user.pk, "acme", "granted", "challenger") is None
    assert sql.version_by_alias_with_access(user.pk, "acme", "absent", "champion") is None


def test_the_chain_head_is_read_and_advanced_as_the_orm_reads_and_updates_it(acme, admin):
    from django.db import transaction

    from registry.models import ActivityChain, ActivityEvent

    model_create(actor=admin, org=acme, name="chained")
    last = ActivityEvent.objects.filter(org=acme).order_by("seq").last()
    chain = ActivityChain.objects.filter(org=acme)
    assert chain.values_list("seq", "head").get() == (last.seq, last.hash)
    with transaction.atomic():
        assert sql.chain_head_locked(acme.pk) == chain.values_list("seq", "head").get()
        sql.chain_advance(acme.pk, last.seq + 7, "f" * 64)
        assert chain.values_list("seq", "head").get() == (last.seq + 7, "f" * 64)
        transaction.set_rollback(True)
    assert chain.values_list("seq", "head").get() == (last.seq, last.hash)
    assert sql.chain_head_locked(Organization.objects.order_by("-pk").first().pk + 1) is None
    with pytest.raises(RuntimeError, match="is gone"):
        sql.chain_advance(-1, 1, "0" * 64)


def test_the_members_are_read_with_their_roles_and_grants(granted, acme, bob):
    from django.contrib.auth import get_user_model

    from registry.permissions import members_access, model_access

    bob.is_active = False
    bob.save(update_fields=["is_active"])  # an inactive member is nobody's reviewer
    expected = (
        get_user_model()
        .objects.filter(is_active=True, pk__in=Membership.objects.filter(org=acme).values("user"))
        .order_by("pk")
    )
    found = sql.members_with_access(acme.pk, granted.pk)
    assert [user.pk for user, _, _ in found] == [user.pk for user in expected]
    assert len(found) >= 3 and bob.pk not in [user.pk for user, _, _ in found]
    for (user, role, bits), member in zip(found, expected, strict=True):
        assert_same(user, member)
        assert role == Membership.objects.get(org=acme, user=member).role
        assert bits == bits_of(member, granted)
    assert any(bits for _, _, bits in found)
    for user, access in members_access(granted):
        assert access == model_access(user, granted)


def test_the_next_version_number_is_taken_as_the_orm_would_take_it(granted, admin):
    from django.db.models import F

    from registry.models import VersionSequence

    version_create(actor=admin, model=granted)
    sequence = VersionSequence.objects.filter(model=granted)
    assert sequence.values_list("last_number", flat=True).get() == 1
    assert sql.next_version_number(granted.pk) == 2
    sequence.update(last_number=F("last_number") + 1)  # what the statement stands for
    assert sql.next_version_number(granted.pk) == 4
    assert sequence.values_list("last_number", flat=True).get() == 4
    assert version_create(actor=admin, model=granted).number == 5
    assert sql.next_version_number(RegisteredModel.objects.order_by("-pk")[0].pk + 1) is None


def test_an_event_is_inserted_as_the_orm_inserts_it(granted, acme, admin):
    from registry.models import ActivityEvent

    version = version_create(actor=admin, model=granted)
    values = {
        "org_id": acme.pk,
        "seq": 10**9,
        "created_at": timezone.now(),
        "actor_id": admin.pk,
        "actor_name": "admin",
        "verb": "version.tested",
        "target_type": "version",
        "target_id": str(version.pk),
        "target_repr": "granted v1 «é»",
        "model_id": granted.pk,
        "version_id": version.pk,
        "changes": {"number": [None, 1], "big": 2**70},
        "data": {"comment": "ünïcode", "none": None, "rate": 0.5},
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
    }
    made = sql.event_insert(values)
    stored = ActivityEvent.objects.get(pk=made.pk)
    assert_same(made, stored)  # the instance returned is the stored row
    by_orm = ActivityEvent.objects.create(**{**values, "seq": values["seq"] + 1})
    expected = columns(ActivityEvent.objects.get(pk=by_orm.pk))
    found = columns(stored)
    for name in ("id", "seq"):
        found.pop(name), expected.pop(name)
    assert found == expected
    # Without an actor, a model or a version, as an org's own events are.
    bare = {**values, "seq": values["seq"] + 2, "actor_id": None, "model_id": None}
    bare["version_id"] = None
    assert_same(sql.event_insert(bare), ActivityEvent.objects.get(seq=bare["seq"], org=acme))
