from typing import Any

from django.db import transaction
from django.utils import timezone

from registry.audit import GENESIS, link_hash
from registry.models import (
    ActivityChain,
    ActivityEvent,
    ModelVersion,
    Organization,
    RegisteredModel,
)
from registry.permissions import access_forget
from registry.prepared import Prepared, PreparedInsert, PreparedUpdate


def chain_start(org: Organization) -> ActivityChain:
    chain, _ = ActivityChain.objects.get_or_create(org=org, defaults={"head": GENESIS})
    return chain


# Every write takes these (registry.prepared): the head row locked, the event inserted and the
# head moved on to it.
_LOCK_CHAIN = Prepared(
    lambda org_id: ActivityChain.objects.select_for_update(no_key=True).filter(org_id=org_id),
    int,
)
_INSERT_EVENT = PreparedInsert(ActivityEvent)
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
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_record must run inside the service's transaction")
    chain = _LOCK_CHAIN.first(org.pk)
    if chain is None:
        chain_start(org)
        chain = _LOCK_CHAIN.first(org.pk)
    if version is not None and model is None:
        model = version.model
    event = ActivityEvent(
        org=org,
        seq=chain.seq + 1,
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
        prev_hash=chain.head,
    )
    event.hash = link_hash(chain.head, _chained_fields(event))
    _append(event)
    # The outbox: after commit the event is handed to Celery (notifications.tasks); if the
    # broker is down the hook logs it and the periodic sweep dispatches the event later.
    from notifications.tasks import enqueue_event

    event_id = event.pk
    access_forget()
    transaction.on_commit(lambda: enqueue_event(event_id), robust=True)
    return event


def _append(event: ActivityEvent) -> None:
    """Insert the event and move the chain head on to it: on PostgreSQL in one statement
    (the insert as a data-modifying WITH of the head's update), elsewhere in two. The event
    row is new and append-only, so it is written without ActivityEvent.save()."""
    insert, insert_params = _INSERT_EVENT.bound(event)
    advance, advance_params = _ADVANCE_CHAIN.bound(event.org_id, event.seq, event.hash)
    connection = transaction.get_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            key = connection.ops.quote_name(ActivityEvent._meta.pk.column)
            cursor.execute(
                f"WITH event AS ({insert}) {advance} RETURNING (SELECT {key} FROM event)",
                [*insert_params, *advance_params],
            )
            row = cursor.fetchone()
        else:
            cursor.execute(insert, insert_params)
            row = cursor.fetchone()
            cursor.execute(advance, advance_params)
    if row is None or row[0] is None:
        raise RuntimeError(f"the activity chain of org {event.org_id} did not advance")
    _INSERT_EVENT.inserted(event, row[0])


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
