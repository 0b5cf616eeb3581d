"""The dispatch's reads of who to tell, as plain SQL (notifications.sql), answer what the
querysets they stand for answer (on SQLite, then PostgreSQL in CI)."""

import itertools

import pytest
from django.db.models import Q

from approvals.models import StageChangeRequest
from approvals.services import request_create
from notifications.models import Kind, NotificationPreference
from notifications.services import preferences_set
from notifications.sql import opted_out, request_with_requester
from registry.services.versions import version_create
from tests.registry.test_sql import assert_same

pytestmark = pytest.mark.django_db


def test_a_request_is_read_with_its_requester_as_the_queryset_reads_it(model, admin, alice):
    asked = request_create(
        actor=alice, version=version_create(actor=alice, model=model), to_stage="staging"
    )
    orphan = request_create(
        actor=admin, version=version_create(actor=alice, model=model), to_stage="staging"
    )
    StageChangeRequest.objects.filter(pk=orphan.pk).update(requester=None)
    for made in (asked, orphan):
        expected = StageChangeRequest.objects.select_related("requester").get(pk=made.pk)
        found = request_with_requester(made.pk)
        assert_same(found, expected)
        if expected.requester is None:
            assert found.requester is None
        else:
            assert_same(found.requester, expected.requester)
    assert request_with_requester(orphan.pk + 1) is None


def test_the_opted_out_are_those_the_queryset_finds(cast, admin, alice, bob, carol):
    preferences_set(actor=alice, enabled={Kind.STAGE_REQUESTED: False, Kind.STAGE_DECIDED: False})
    preferences_set(actor=bob, enabled={Kind.STAGE_REQUESTED: True, Kind.STAGE_DECIDED: False})
    preferences_set(actor=carol, enabled={Kind.VERSION_CREATED: False})
    people = [admin.pk, alice.pk, bob.pk, carol.pk]
    cases = 0
    for size in range(len(people) + 1):
        for users, decided, kind in itertools.product(
            itertools.combinations(people, size),
            [None, *people],
            [Kind.STAGE_REQUESTED, Kind.VERSION_CREATED, Kind.STAGE_APPLIED],
        ):
            expected = set(
                NotificationPreference.objects.filter(enabled=False)
                .filter(
                    Q(user_id__in=users, kind=kind) | Q(user_id=decided, kind=Kind.STAGE_DECIDED)
                )
                .values_list("user_id", flat=True)
            )
            assert opted_out(list(users), kind, decided, Kind.STAGE_DECIDED) == expected
            cases += bool(expected)
    assert cases > 0
    assert opted_out([alice.pk], Kind.STAGE_REQUESTED, None, Kind.STAGE_DECIDED) == {alice.pk}
    assert opted_out([], Kind.STAGE_REQUESTED, bob.pk, Kind.STAGE_DECIDED) == {bob.pk}
    assert opted_out([bob.pk], Kind.STAGE_REQUESTED, None, Kind.STAGE_DECIDED) == set()
