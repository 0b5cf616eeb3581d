"""Prepared querysets (registry.prepared)."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.db.models import Count, F
from django.db.transaction import TransactionManagementError

from registry.models import (
    ActivityChain,
    ActivityEvent,
    Blob,
    Membership,
    ModelVersion,
    RegisteredModel,
)
from registry.prepared import AnyOf, Prepared, PreparedInsert, PreparedShapes, PreparedUpdate
from registry.services.versions import version_create

BY_NAME = Prepared(
    lambda org_id, name: (
        RegisteredModel.objects.select_related("org", "owner")
        .filter(org_id=org_id, name=name)
        .annotate(version_count=Count("versions"))
    ),
    int,
    str,
)
ROLES = Prepared(
    lambda org_id: (
        Membership.objects.filter(org_id=org_id)
        .order_by("user__username")
        .values_list("user__username", "role")
    ),
    int,
)
VERSION_BY_ID = Prepared(
    lambda pk: ModelVersion.objects.select_related("model__org", "branch").filter(pk=pk),
    uuid.UUID,
)


@pytest.mark.django_db
def test_it_gives_what_the_queryset_gives(model, admin, acme, django_assert_num_queries):
    version_create(actor=admin, model=model)
    version_create(actor=admin, model=model)
    expected = (
        RegisteredModel.objects.select_related("org", "owner")
        .annotate(version_count=Count("versions"))
        .get(pk=model.pk)
    )
    for _ in range(2):  # compiled on the first call, bound on the second
        with django_assert_num_queries(1):
            found = BY_NAME.first(acme.pk, "fraud")
            assert found.org.slug == "acme"
            assert found.owner == admin
        assert found == expected
        assert found.version_count == 2
        assert found.tags == expected.tags
        assert found.created_at == expected.created_at
    assert BY_NAME.first(acme.pk, "no-such-model") is None
    assert BY_NAME.objects(acme.pk + 1000, "fraud") == []


@pytest.mark.django_db
def test_it_gives_values_rows(cast, acme):
    expected = list(
        Membership.objects.filter(org=acme)
        .order_by("user__username")
        .values_list("user__username", "role")
    )
    assert [tuple(row) for row in ROLES.rows(acme.pk)] == expected
    assert ROLES.rows(cast.globex.pk)
    assert ROLES.rows(10**6) == []


@pytest.mark.django_db
def test_it_binds_uuid_arguments(model, admin):
    version = version_create(actor=admin, model=model)
    found = VERSION_BY_ID.first(version.pk)
    assert found.pk == version.pk
    assert found.model.org.slug == "acme"
    assert found.branch.name == "main"
    assert VERSION_BY_ID.first(uuid.uuid4()) is None


@pytest.mark.django_db
def test_it_refuses_a_shape_that_holds_an_argument_inline(acme):
    sliced = Prepared(lambda n: RegisteredModel.objects.order_by("pk")[:n], int)
    with pytest.raises(ValueError, match="inline"):
        sliced.objects(3)
    unused = Prepared(lambda name: RegisteredModel.objects.all(), str)
    with pytest.raises(ValueError, match=r"arguments \[0\]"):
        unused.objects("fraud")


@pytest.mark.django_db(transaction=True)
def test_it_keeps_row_locks_inside_transactions(model):
    locked = Prepared(lambda pk: RegisteredModel.objects.select_for_update().filter(pk=pk), int)
    with pytest.raises(TransactionManagementError):
        locked.first(model.pk)
    with transaction.atomic():
        assert locked.first(model.pk) == model


@pytest.mark.django_db
def test_it_updates_rows_of_a_fixed_shape(acme, globex, django_assert_num_queries):
    renumber = PreparedUpdate(
        lambda seq, org_id: (ActivityChain.objects.filter(org_id=org_id), {"seq": seq}),
        int,
        int,
    )
    before = ActivityChain.objects.get(org=globex)
    for seq in (10**12, 10**12 + 1):  # a big integer column, as the backend sends it
        with django_assert_num_queries(1):
            assert renumber.update(seq, acme.pk) == 1
        assert ActivityChain.objects.get(org=acme).seq == seq
    assert renumber.update(1, 10**6) == 0
    after = ActivityChain.objects.get(org=globex)
    assert (after.seq, after.head) == (before.seq, before.head)


@pytest.mark.django_db
def test_an_update_reads_back_what_it_changed(acme, globex, django_assert_num_queries):
    advance = PreparedUpdate(
        lambda org_id: (ActivityChain.objects.filter(org_id=org_id), {"seq": F("seq") + 1}),
        int,
        returning=("seq", "head"),
    )
    before = ActivityChain.objects.get(org=acme)
    other = ActivityChain.objects.get(org=globex)
    with django_assert_num_queries(1):
        assert advance.returning(acme.pk) == [(before.seq + 1, before.head)]
    assert advance.returning(acme.pk) == [(before.seq + 2, before.head)]
    assert ActivityChain.objects.get(org=acme).seq == before.seq + 2
    assert ActivityChain.objects.get(org=globex).seq == other.seq
    assert advance.returning(10**6) == []
    with pytest.raises(TypeError, match="no columns to return"):
        PreparedUpdate(
            lambda org_id: (ActivityChain.objects.filter(org_id=org_id), {"seq": 1}), int
        ).returning(acme.pk)


@pytest.mark.django_db
def test_it_inserts_a_row_as_djangos_insert_would(acme, alice, model, django_assert_num_queries):
    insert = PreparedInsert(ActivityEvent)
    when = datetime(2026, 11, 22, 9, 30, 15, 250000, tzinfo=UTC)
    event = ActivityEvent(
        org=acme,
        seq=10**12,
        created_at=when,
        actor=alice,
        actor_name="alice",
        verb="model.updated",
        target_type="model",
        target_id=str(model.pk),
        target_repr="fraud \u2013 <b>ünïcode</b>",
        model=model,
        changes={"tags": [{}, {"team": "risk", "n": 1.5, "ok": True, "none": None}]},
        data={"list": [1, "two", {"three": 3}]},
        prev_hash="0" * 64,
        hash="f" * 64,
    )
    with django_assert_num_queries(0):
        sql, params = insert.bound(event)
    assert sql.startswith("INSERT INTO") and "RETURNING" in sql
    with django_assert_num_queries(1):
        assert insert.insert(event) is event
    assert event.pk is not None and not event._state.adding
    stored = ActivityEvent.objects.get(pk=event.pk)
    for field in ActivityEvent._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(event, field.attname), field.name
    with pytest.raises(TypeError, match="made neither here nor there"):
        PreparedInsert(Blob).bound(Blob(sha256="0" * 64, size=1))


@pytest.mark.django_db
def test_it_inserts_a_row_keyed_by_the_row_it_extends(acme, alice):
    from registry.models import RegisteredModel, VersionSequence

    bare = RegisteredModel.objects.create(org=acme, name="bare", owner=alice, created_by=alice)
    sequence = PreparedInsert(VersionSequence).save_new(VersionSequence(model=bare))
    assert (sequence.pk, sequence._state.adding) == (bare.pk, False)
    assert VersionSequence.objects.get(model=bare).last_number == 0


@pytest.mark.django_db
def test_it_saves_a_new_row_as_save_would(model, alice, django_assert_num_queries):
    from django.db.models.signals import post_save, pre_save

    seen = []

    def note(signal):
        return lambda sender, instance, **kwargs: seen.append((signal, instance.number, kwargs))

    before, after = note("pre_save"), note("post_save")
    pre_save.connect(before, sender=ModelVersion)
    post_save.connect(after, sender=ModelVersion)
    try:
        version = ModelVersion(
            model=model, number=7, digest="sha256:" + "a" * 64, branch=model.branches.get()
        )
        version.created_by = alice
        with django_assert_num_queries(2):  # the row, then its history row (post_save)
            PreparedInsert(ModelVersion).save_new(version)
    finally:
        pre_save.disconnect(before, sender=ModelVersion)
        post_save.disconnect(after, sender=ModelVersion)
    assert [(signal, number) for signal, number, _ in seen] == [("pre_save", 7), ("post_save", 7)]
    assert seen[1][2]["created"] is True and seen[1][2]["raw"] is False
    stored = ModelVersion.objects.get(pk=version.pk)
    assert stored.created_at == version.created_at and stored.updated_at == version.updated_at
    assert version.created_at is not None and not version._state.adding
    assert stored.history.get().history_type == "+"
    with pytest.raises(TypeError, match="new rows only"):
        PreparedInsert(ModelVersion).save_new(stored)


@pytest.mark.django_db
def test_it_checks_its_arguments(acme):
    with pytest.raises(TypeError, match="expected 2 arguments"):
        BY_NAME.objects(acme.pk)


@pytest.mark.django_db
def test_any_of_is_in_with_one_parameter(model, admin, django_assert_num_queries):
    versions = [version_create(actor=admin, model=model) for _ in range(3)]
    wanted = [versions[0].pk, versions[2].pk, uuid.uuid4()]
    with django_assert_num_queries(1) as captured:
        found = set(ModelVersion.objects.filter(AnyOf("id", wanted)).values_list("pk", flat=True))
    assert found == {versions[0].pk, versions[2].pk}
    sql = captured.captured_queries[0]["sql"]
    assert "= ANY(" in sql or "IN (SELECT value FROM json_each(" in sql
    assert not ModelVersion.objects.filter(AnyOf("id", [])).exists()
    assert ModelVersion.objects.filter(~AnyOf("id", wanted)).get() == versions[1]
    numbers = ModelVersion.objects.filter(AnyOf("number", [1, 3])).values_list("number", flat=True)
    assert sorted(numbers) == [1, 3]
    # Text columns: a list parameter (ids and numbers go as one array literal).
    named = Prepared(
        lambda names: RegisteredModel.objects.filter(AnyOf("name", names)).values_list("name"),
        list,
    )
    assert named.rows(["fraud", "x'y,\"{z}"]) == [("fraud",)]
    assert named.rows(["nope"]) == []


@pytest.mark.django_db
def test_a_prepared_query_takes_a_list_for_any_of(model, admin, django_assert_num_queries):
    versions = [version_create(actor=admin, model=model) for _ in range(3)]
    of_ids = Prepared(
        lambda ids, org_id: (
            ModelVersion.objects.filter(AnyOf("id", ids), model__org_id=org_id)
            .order_by("number")
            .values_list("number", "tags")
        ),
        list,
        int,
    )
    by_number = Prepared(
        lambda numbers: ModelVersion.objects.filter(AnyOf("number", numbers)).order_by("number"),
        list,
    )
    for wanted, numbers in [
        ([versions[0].pk, versions[2].pk, uuid.uuid4()], [1, 3]),
        ([versions[1].pk], [2]),
        ([], []),
    ]:
        with django_assert_num_queries(1):
            assert [n for n, _ in of_ids.rows(wanted, model.org_id)] == numbers
        assert [v.number for v in by_number.objects(numbers)] == numbers
    assert of_ids.rows([versions[0].pk], model.org_id + 1) == []
    assert of_ids.rows([versions[0].pk], model.org_id) == [[1, {}]]  # JSON as Django reads it


@pytest.mark.django_db
def test_it_reads_json_as_django_does(model, admin):
    tags = {"big": str(2**70), "text": "ünï \u2028"}
    params = {"n": 2**70, "f": 2.5, "none": None, "yes": True}  # 2**70: past orjson's ints
    version = version_create(actor=admin, model=model, tags=tags, params=params)
    read = Prepared(
        lambda pk: ModelVersion.objects.filter(pk=pk).values_list("tags", "params"), uuid.UUID
    )
    assert read.rows(version.pk) == [[tags, params]]
    assert read.rows(version.pk)[0] == list(
        ModelVersion.objects.filter(pk=version.pk).values_list("tags", "params").get()
    )


@pytest.mark.django_db
def test_shapes_are_compiled_per_shape_and_kept_to_a_bound(model, admin, acme):
    version_create(actor=admin, model=model, tags={"team": "risk"})
    built = []

    def build(shape, org_id):
        built.append(shape)
        return (
            ModelVersion.objects.filter(model__org_id=org_id, tags__has_key=shape)
            .order_by("number")
            .values("number", "model__name")
        )

    shapes = PreparedShapes(build, keep=2)
    assert shapes.dicts(acme.pk, shape="team") == [{"number": 1, "model__name": "fraud"}]
    assert shapes.dicts(acme.pk, shape="team") == [{"number": 1, "model__name": "fraud"}]
    assert built == ["team", "team"]  # compiled once (two marker variants), then bound
    assert shapes.dicts(acme.pk, shape="cohort") == []
    assert shapes.dicts(acme.pk + 1, shape="region") == []
    assert shapes.dicts(acme.pk, shape="team") == [{"number": 1, "model__name": "fraud"}]
    assert built.count("team") == 4  # the oldest two shapes were let go: compiled again


@pytest.mark.django_db
def test_history_managers_are_built_once_and_still_record(model, admin):
    """registry.apps caches simple-history's manager class per descriptor."""
    version = version_create(actor=admin, model=model, description="first")
    first, second = ModelVersion.history, version.history
    assert type(first) is type(second)
    assert first.model is second.model
    assert list(version.history.values_list("description", flat=True)) == ["first"]
