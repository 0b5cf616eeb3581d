"""Each plain statement of approvals.sql answers what the queryset it stands for answers,
down to the type of every column of every instance it makes (on the database the suite runs
on: SQLite, then PostgreSQL in CI)."""

import pytest
from django.db import transaction

from approvals import sql
from approvals.models import StageChangeRequest
from approvals.services import alias_request_create, request_create
from registry import sql as registry_sql
from registry.models import Branch
from registry.services.aliases import alias_protect, alias_set
from tests.registry.test_sql import assert_same

pytestmark = pytest.mark.django_db


@pytest.fixture
def requests(model, admin, alice, make_version):
    """A stage request by alice, an alias move from v1 to v2 and an alias's first pointing
    (nothing before it) by her, and a stage request whose requester is gone."""
    v1, v2 = make_version(), make_version()
    stage = request_create(actor=alice, version=v2, to_stage="staging", comment="ready")
    alias_set(actor=admin, model=model, name="champion", version=v1)
    alias_protect(actor=admin, model=model, name="champion")
    moved = alias_request_create(actor=alice, model=model, name="champion", version=v2)
    new = alias_request_create(actor=alice, model=model, name="fresh", version=v2)
    orphan = request_create(actor=admin, version=v1, to_stage="staging")
    StageChangeRequest.objects.filter(pk=orphan.pk).update(requester=None)
    return [stage, moved, new, orphan]


@pytest.mark.parametrize("who", ["admin", "alice", "bob", "carol", "mallory"])
def test_a_requests_model_is_read_with_its_org_and_the_callers_access(
    request, requests, model, who
):
    user = request.getfixturevalue(who)
    for made in requests:
        expected = StageChangeRequest.objects.select_related("model__org").get(pk=made.pk)
        found, role, bits = sql.request_model_with_access(user.pk, made.pk)
        assert_same(found, expected.model)
        assert_same(found.org, expected.model.org)
        assert (found.visibility, role, bits) == registry_sql.model_access(user.pk, model.pk)
    assert sql.request_model_with_access(user.pk, requests[-1].pk + 100) is None


def test_a_request_is_read_locked_with_its_version_branch_alias_and_requester(
    requests, model, alice
):
    for made in requests:
        expected = StageChangeRequest.objects.select_related(
            "version__branch", "alias_from", "requester"
        ).get(pk=made.pk)
        with transaction.atomic():
            found = sql.request_locked(made.pk, model)
        assert_same(found, expected)
        for related in ("version", "alias_from", "requester"):
            assert getattr(found, related) == getattr(expected, related)
            if getattr(expected, related) is not None:
                assert_same(getattr(found, related), getattr(expected, related))
        assert_same(found.version.branch, expected.version.branch)
        assert found.model is model and found.version.model is model
    stage, moved, new, orphan = requests
    assert stage.requester == alice and moved.alias_from.number == 1
    assert StageChangeRequest.objects.get(pk=new.pk).alias_from is None
    assert StageChangeRequest.objects.get(pk=orphan.pk).requester is None
    assert Branch.objects.filter(model=model).count() == 1
    assert sql.request_locked(orphan.pk + 100, model) is None
