"""notifications.sql's lease of a delivery and its sent mark change exactly the rows, and
exactly as, the ORM's conditional updates they stand for (on SQLite, then PostgreSQL in CI)."""

from datetime import timedelta

import pytest
from django.db.models import F, Q
from django.utils import timezone

from notifications import sql
from notifications.models import Channel, Delivery, DeliveryStatus
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

COLUMNS = ("status", "attempts", "lease_until", "sent_at", "last_error")


def claim_by_orm(pk: int, now, until) -> bool:
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    changed = (
        Delivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING)
        .filter(free)
        .update(lease_until=until, attempts=F("attempts") + 1)
    )
    return changed == 1


def sent_by_orm(pk: int, now) -> None:
    Delivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING).update(
        lease_until=None, status=DeliveryStatus.SENT, sent_at=now, last_error=""
    )


@pytest.fixture
def pairs(cast, model, alice):
    """Five states of a delivery, each twice (one for the ORM, one for the statement)."""
    now = timezone.now()
    states = [
        {},  # pending, nobody holds it
        {"lease_until": now - timedelta(seconds=1), "attempts": 2},  # a lease run out
        {"lease_until": now + timedelta(seconds=30), "attempts": 1},  # held
        {"status": DeliveryStatus.SENT, "sent_at": now},
        {"status": DeliveryStatus.FAILED, "last_error": "refused"},
    ]
    users = [cast.admin, cast.alice, cast.bob, cast.carol, cast.mallory]
    events = [version_create(actor=alice, model=model) for _ in range(2)]
    made = []
    for state, user in zip(states, users, strict=True):
        made.append(
            [
                Delivery.objects.create(
                    event_id=_event_id(version), user=user, channel=Channel.EMAIL, **state
                )
                for version in events
            ]
        )
    return now, made


def _event_id(version) -> int:
    from registry.models import ActivityEvent

    return ActivityEvent.objects.get(verb="version.created", version_id=version.pk).pk


def row(delivery: Delivery) -> tuple:
    return Delivery.objects.filter(pk=delivery.pk).values_list(*COLUMNS).get()


def test_the_lease_is_taken_as_the_orm_takes_it(pairs):
    now, made = pairs
    until = now + timedelta(seconds=25)
    taken = []
    for by_orm, by_sql in made:
        assert sql.delivery_claim(by_sql.pk, now, until) == claim_by_orm(by_orm.pk, now, until)
        assert row(by_sql) == row(by_orm)
        taken.append(row(by_sql)[2] == until)
    assert taken == [True, True, False, False, False]  # pending and free only, once each
    assert not any(sql.delivery_claim(b.pk, now, until) for _, b in made)


def test_the_sent_mark_is_written_as_the_orm_writes_it(pairs):
    now, made = pairs
    for by_orm, by_sql in made:
        sql.delivery_sent(by_sql.pk, now)
        sent_by_orm(by_orm.pk, now)
        assert row(by_sql) == row(by_orm)
    assert [row(b)[0] for _, b in made] == ["sent", "sent", "sent", "sent", "failed"]
    assert row(made[0][1])[1:] == (0, None, now, "")
