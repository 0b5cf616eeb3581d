"""Reading timestamptz on PostgreSQL (registry.timestamps): the same values, and the same
errors, as Django's own loader, and the fast loader stays in place on every cursor."""

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from registry.models import ModelVersion
from registry.services.versions import version_create
from registry.timestamps import UTC

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# As PostgreSQL writes them in UTC: with and without a fraction, short fractions, early
# and late years, and what fromisoformat cannot read (handed to Django's loader).
TEXTS = [
    "2026-11-22 21:50:21.548417+00",
    "2026-11-22 21:50:21+00",
    "2026-11-22 21:50:21.5+00",
    "2026-11-22 21:50:21.000001+00",
    "1999-12-31 23:59:59.999999+00",
    "0099-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "0044-03-15 12:00:00+00 BC",
    "infinity",
    "-infinity",
]


def _read(text: str, *, django: bool):
    with connection.cursor() as cursor:
        if django:
            register_tzloader(UTC, cursor.cursor)
        try:
            cursor.execute("SELECT %s::timestamptz", [text])
            return cursor.fetchone()[0]
        except Exception as exc:  # compared by type and message below
            return (type(exc), str(exc))


@pytest.mark.parametrize("text", TEXTS)
def test_it_reads_what_djangos_loader_reads(text):
    fast, django = _read(text, django=False), _read(text, django=True)
    assert fast == django
    if not isinstance(fast, tuple):
        assert fast.tzinfo is UTC


def test_it_reads_an_offset_sent_in_another_zone_the_same(settings):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        cursor.execute("SELECT '2026-11-22 21:50:21.5+00'::timestamptz")
        (value,) = cursor.fetchone()
    assert value.isoformat() == "2026-11-22T21:50:21.500000+00:00"
    assert value.tzinfo is UTC


def test_it_is_the_loader_of_the_connection_and_of_every_cursor(model, alice):
    oid = connection.connection.adapters.types["timestamptz"].oid
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(oid, Format.TEXT)
    assert loader.__name__ == "UtcTimestamptzLoader"
    version = version_create(actor=alice, model=model)
    assert ModelVersion.objects.get(pk=version.pk).created_at == version.created_at
