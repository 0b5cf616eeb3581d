"""Prepared querysets (registry.prepared) and the per-request note of who may do what."""

import uuid

import pytest
from django.db import transaction
from django.db.models import Count
from django.db.transaction import TransactionManagementError

from registry.errors import NotFound
from registry.models import (
    Membership,
    ModelVersion,
    RegisteredModel,
)
from registry.permissions import (
    access_noted_per_request,
    get_model_for_user,
    model_access,
)
from registry.prepared import AnyOf, Prepared, PreparedShapes
from registry.services.registered_models import model_update
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
def test_it_checks_its_arguments(acme):
    with pytest.raises(TypeError, match="expected 2 arguments"):
        BY_NAME.objects(acme.pk)


@pytest.mark.django_db
def test_a_request_reads_access_once(model, carol, django_assert_num_queries):
    with access_noted_per_request():
        get_model_for_user(carol, "acme", "fraud")
        with django_assert_num_queries(0):
            assert model_access(carol, model).view
    # Outside a request nothing is noted: every check reads as stored, in one query
    # (visibility, role and grants).
    with django_assert_num_queries(1):
        assert model_access(carol, model).view


@pytest.mark.django_db
def test_a_change_in_the_request_forgets_what_was_noted(model, admin, carol):
    with access_noted_per_request():
        noted = get_model_for_user(carol, "acme", "fraud")
        model_update(actor=admin, model=model, visibility="private")
        assert not model_access(carol, noted).view
        with pytest.raises(NotFound):
            get_model_for_user(carol, "acme", "fraud")


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
