import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from registry.audit import GENESIS, canonical_event_around_seq, link_hash
from registry.models import (
    ActivityChain,
    ActivityEvent,
    ModelVersion,
    Organization,
    RegisteredModel,
)
from registry.prepared import Prepared, PreparedInsert, PreparedUpdate
from registry.signals import activity_committed


def chain_start(org: Organization) -> ActivityChain:
    chain, _ = ActivityChain.objects.get_or_create(org=org, defaults={"head": GENESIS})
    return chain


# An append elsewhere than on PostgreSQL (registry.prepared): the head row locked, the event
# inserted and the head moved on to it.
_LOCK_CHAIN = Prepared(
    lambda org_id: ActivityChain.objects.select_for_update(no_key=True).filter(org_id=org_id),
    int,
)
_INSERT_EVENT = PreparedInsert(ActivityEvent)
_APPEND_CACHE = "_modelvault_activity_append"
_ADVANCE_CHAIN = PreparedUpdate(
    lambda org_id, seq, head: (
        ActivityChain.objects.filter(org_id=org_id),
        {"seq": seq, "head": head},
    ),
    int,
    int,
    str,
)


def event_record(
    *,
    actor,
    org: Organization,
    verb: str,
    target: RegisteredModel | ModelVersion | Organization | Any,
    target_type: str | None = None,
    model: RegisteredModel | None = None,
    version: ModelVersion | None = None,
    changes: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> ActivityEvent:
    """Append one event to the org's hash chain, inside the caller's transaction.

    The chain head row is locked, so concurrent writers queue and links never fork. Callers
    record events last in their transaction, so this lock is always the last one taken.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the service's transaction")
    if version is not None and model is None:
        model = version.model
    event = ActivityEvent(
        org=org,
        created_at=timezone.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=actor.get_username() if getattr(actor, "pk", None) else "",
        verb=verb,
        target_type=target_type or _target_type(target),
        target_id=str(target.pk),
        target_repr=_target_repr(target)[:300],
        model=model,
        version=version,
        changes=changes or {},
        data=data or {},
    )
    append = _append_in_one if connection.vendor == "postgresql" else _append_in_steps
    if not append(event, connection):
        chain_start(org)  # an org made other than by org_create, which starts its chain
        if not append(event, connection):
            raise RuntimeError(f"the activity chain of org {org.pk} did not advance")
    # The outbox: after commit the event is handed on to whoever listens (notifications);
    # a listener that fails is logged, and the periodic sweep dispatches the event later.
    event_id = event.pk
    transaction.on_commit(
        lambda: activity_committed.send(sender=ActivityEvent, event_id=event_id), robust=True
    )
    return event


def _append_in_steps(event: ActivityEvent, connection) -> bool:
    """Lock the head, link the event to it, insert it and move the head on to it; False
    when the org has no chain yet."""
    chain = _LOCK_CHAIN.first(event.org_id)
    if chain is None:
        return False
    event.seq, event.prev_hash = chain.seq + 1, chain.head
    event.hash = link_hash(chain.head, _chained_fields(event))
    _INSERT_EVENT.insert(event)
    if not _ADVANCE_CHAIN.update(event.org_id, event.seq, event.hash):
        raise RuntimeError(f"the activity chain of org {event.org_id} did not advance")
    return True


def _append_in_one(event: ActivityEvent, connection) -> bool:
    """The same on PostgreSQL as one statement (`_append_sql`): the head's update locks the
    row, links the event (its seq and hash computed there, from the canonical text around
    the seq) and the insert writes it, so the lock is held from this statement to COMMIT
    only. False when the org has no chain yet."""
    sql, positions = _append_sql(connection)
    before, after = canonical_event_around_seq(_chained_fields(event))
    _, values = _INSERT_EVENT.bound(event)
    params = [before, after, event.org_id, *(values[i] for i in positions)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    pk, event.seq, event.prev_hash, event.hash = row
    # The database hashed what this process would: a mismatch (a database whose text is not
    # UTF-8, say) would write a chain that verify_activity refuses, so it is refused here.
    if link_hash(event.prev_hash, _chained_fields(event)) != event.hash:
        raise RuntimeError("the database's link hash differs from registry.audit.link_hash")
    _INSERT_EVENT.inserted(event, pk)
    return True


def _append_sql(connection) -> tuple[str, tuple[int, ...]]:
    """The append statement, built once per connection, and which of the event insert's
    values it takes (all but seq, prev_hash and hash, which come from the head's update).

    The head is read for update in the FROM list, as its value before the update is the
    event's prev_hash (RETURNING gives only the new one)."""
    built = connection.__dict__.get(_APPEND_CACHE)
    if built is not None:
        return built
    quote = connection.ops.quote_name
    _, fields = _INSERT_EVENT.statement(connection)
    chain = quote(ActivityChain._meta.db_table)
    linked = {"seq": "link.seq", "prev_hash": "link.prev_head", "hash": "link.head"}
    columns, items, positions = [], [], []
    for position, field in enumerate(fields):
        columns.append(quote(field.column))
        if field.attname in linked:
            items.append(linked[field.attname])
        else:
            # Typed, as INSERT ... SELECT does not type its parameters from the columns; a
            # length is left to the column, so an overlong value is refused, not cut.
            items.append(f"%s::{re.sub(r'[(].*[)]', '', field.db_type(connection))}")
            positions.append(position)
    sql = (
        f"WITH link AS (UPDATE {chain} AS chain SET seq = chain.seq + 1, "
        "head = encode(sha256(convert_to("
        "chain.head || %s || (chain.seq + 1)::text || %s, 'UTF8')), 'hex') "
        f"FROM (SELECT org_id, head FROM {chain} WHERE org_id = %s FOR NO KEY UPDATE) AS prev "
        "WHERE chain.org_id = prev.org_id "
        "RETURNING chain.seq, chain.head, prev.head AS prev_head) "
        f"INSERT INTO {quote(ActivityEvent._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(items)} FROM link "
        f"RETURNING {quote(ActivityEvent._meta.pk.column)}, seq, prev_hash, hash"
    )
    built = connection.__dict__[_APPEND_CACHE] = (sql, tuple(positions))
    return built


def _chained_fields(event: ActivityEvent) -> dict[str, Any]:
    return {
        "org_id": event.org_id,
        "seq": event.seq,
        "created_at": event.created_at,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "verb": event.verb,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "model_id": event.model_id,
        "version_id": event.version_id,
        "changes": event.changes,
        "data": event.data,
    }


def _target_type(target: Any) -> str:
    return {
        "RegisteredModel": "model",
        "ModelVersion": "version",
        "Organization": "org",
        "Artifact": "artifact",
        "Comment": "comment",
        "Membership": "membership",
        "Team": "team",
    }.get(type(target).__name__, type(target).__name__.lower())


def _target_repr(target: Any) -> str:
    if isinstance(target, ModelVersion):
        return f"{target.model.name} v{target.number}"
    if isinstance(target, RegisteredModel):
        return target.name
    return str(target)
