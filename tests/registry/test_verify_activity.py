"""manage.py verify_activity: an intact chain passes; any tampering names the first broken link.

The tampering is done with raw SQL, as an attacker who owns the database would: the ORM
refuses to change or delete an event, and so do the database's triggers, which such an
attacker can lift (tests/registry/test_triggers.py shows them refusing).
"""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from registry.audit import CHAINED_FIELDS, link_hash
from registry.models import ActivityChain, ActivityEvent
from registry.services.comments import comment_add
from registry.services.orgs import org_create
from registry.services.versions import version_create
from tests.conftest import triggers_lifted

TABLE = ActivityEvent._meta.db_table
# Far above any real seq: renumbering goes through it so that (org, seq) stays unique
# after every single row update, which PostgreSQL checks row by row.
OFFSET = 1_000_000


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_activity", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_broken(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="broken"):
        call_command("verify_activity", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def sql(statement: str, params: list) -> None:
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def busy_acme(acme, model, alice, bob):
    """acme with a chain of some length: versions and comments on top of the cast's events."""
    for number in range(3):
        version_create(actor=alice, model=model, params={"lr": 0.1 * (number + 1)})
        comment_add(actor=bob, model=model, body=f"comment {number}")
    count = ActivityEvent.objects.filter(org=acme).count()
    assert count >= 10
    assert ActivityChain.objects.get(org=acme).seq == count
    return acme


def last_seq(org) -> int:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").values_list("seq", flat=True)[0]


@pytest.mark.django_db
def test_it_passes_intact_chains_of_several_orgs(busy_acme, globex, root):
    initech = org_create(actor=root, slug="initech", name="Initech")
    acme_count = ActivityEvent.objects.filter(org=busy_acme).count()

    out, err = run()

    assert f"acme: {acme_count} events, chain intact" in out
    globex_count = ActivityEvent.objects.filter(org=globex).count()
    assert f"globex: {globex_count} events, chain intact" in out
    initech_count = ActivityEvent.objects.filter(org=initech).count()
    assert initech_count >= 1
    assert f"initech: {initech_count} events, chain intact" in out
    assert err == ""


@pytest.mark.django_db
def test_it_verifies_one_org_with_the_org_option(busy_acme, globex):
    out, _ = run("--org", "globex")

    assert out.startswith("globex: ")
    assert "acme" not in out


@pytest.mark.django_db
def test_it_refuses_an_unknown_org(busy_acme):
    with pytest.raises(CommandError, match="organization nosuch not found"):
        run("--org", "nosuch")


@pytest.mark.django_db
def test_it_names_an_edited_event(busy_acme, globex):
    sql(
        f"UPDATE {TABLE} SET target_repr = %s WHERE org_id = %s AND seq = %s",
        ["something else", busy_acme.pk, 5],
    )

    output = run_broken()

    assert "acme: broken at event #5: its content does not match its hash (edited)" in output
    assert "globex: " in output and "chain intact" in output


@pytest.mark.django_db
def test_it_names_an_event_whose_json_was_edited(busy_acme):
    event = ActivityEvent.objects.get(org=busy_acme, seq=7)
    sql(
        f"UPDATE {TABLE} SET data = %s WHERE id = %s",
        ['{"forged": true}', event.pk],
    )

    output = run_broken("--org", "acme")

    assert "acme: broken at event #7: its content does not match its hash" in output


@pytest.mark.django_db
def test_it_names_a_deleted_middle_event(busy_acme):
    sql(f"DELETE FROM {TABLE} WHERE org_id = %s AND seq = %s", [busy_acme.pk, 4])

    output = run_broken()

    assert "acme: broken at event #5: expected event #4 next, found #5" in output
    assert "events are missing" in output


@pytest.mark.django_db
def test_it_names_an_inserted_event(busy_acme):
    # A careful forger: renumber the rows after #6 and insert a row at #6 whose prev_hash and
    # hash are right for its position. The original #6, now #7, no longer links to it.
    before = ActivityEvent.objects.filter(org=busy_acme, seq=5).values(*CHAINED_FIELDS, "hash")[0]
    forged = {**before, "seq": 6, "verb": "lock.lowered"}
    forged_hash = link_hash(before["hash"], forged)
    sql(
        f"UPDATE {TABLE} SET seq = seq + %s WHERE org_id = %s AND seq >= %s",
        [OFFSET, busy_acme.pk, 6],
    )
    sql(
        f"UPDATE {TABLE} SET seq = seq - %s + 1 WHERE org_id = %s AND seq >= %s",
        [OFFSET, busy_acme.pk, OFFSET],
    )
    columns = [c for c in CHAINED_FIELDS if c not in ("seq", "verb")]
    listed = ", ".join(columns)
    sql(
        f"INSERT INTO {TABLE} ({listed}, seq, verb, prev_hash, hash) "
        f"SELECT {listed}, %s, %s, %s, %s FROM {TABLE} WHERE org_id = %s AND seq = %s",
        [6, "lock.lowered", before["hash"], forged_hash, busy_acme.pk, 5],
    )
    assert ActivityEvent.objects.get(org=busy_acme, seq=6).verb == "lock.lowered"

    output = run_broken()

    assert "acme: broken at event #7: prev_hash does not match" in output


@pytest.mark.django_db
def test_it_names_swapped_events(busy_acme):
    org = busy_acme.pk
    sql(f"UPDATE {TABLE} SET seq = %s WHERE org_id = %s AND seq = %s", [OFFSET, org, 3])
    sql(f"UPDATE {TABLE} SET seq = %s WHERE org_id = %s AND seq = %s", [3, org, 8])
    sql(f"UPDATE {TABLE} SET seq = %s WHERE org_id = %s AND seq = %s", [8, org, OFFSET])

    output = run_broken()

    assert "acme: broken at event #3: prev_hash does not match" in output


@pytest.mark.django_db
def test_it_names_a_truncated_chain(busy_acme):
    last = last_seq(busy_acme)
    sql(f"DELETE FROM {TABLE} WHERE org_id = %s AND seq > %s", [busy_acme.pk, last - 2])

    output = run_broken()

    assert (
        f"acme: broken at event #{last - 2}: the chain ends at event #{last - 2} but its head "
        f"records #{last}: events were removed from the end"
    ) in output


@pytest.mark.django_db
def test_it_names_a_missing_chain_head(busy_acme):
    sql(f"DELETE FROM {ActivityChain._meta.db_table} WHERE org_id = %s", [busy_acme.pk])

    output = run_broken()

    assert "acme: broken at chain end: the chain head record is missing" in output
