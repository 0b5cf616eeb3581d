from typing import Any

from django.db import transaction
from django.utils import timezone

from registry import sql
from registry.audit import CHAINED_FIELDS, GENESIS, link_hash
from registry.models import (
    ActivityChain,
    ActivityEvent,
    ModelVersion,
    Organization,
    RegisteredModel,
)
from registry.signals import activity_committed


def chain_start(org: Organization) -> ActivityChain:
    chain, _ = ActivityChain.objects.get_or_create(org=org, defaults={"head": GENESIS})
    return chain


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
    head = sql.chain_head_locked(org.pk)
    if head is None:
        chain_start(org)  # an org made other than by org_create, which starts its chain
        head = sql.chain_head_locked(org.pk)
    seq, prev_hash = head
    event.seq, event.prev_hash = seq + 1, prev_hash
    event.hash = link_hash(prev_hash, _chained_fields(event))
    event.save(force_insert=True)
    sql.chain_advance(org.pk, event.seq, event.hash)
    # The outbox: after commit the event is handed on to whoever listens (notifications);
    # a listener that fails is logged, and the periodic sweep dispatches the event later.
    transaction.on_commit(
        lambda: activity_committed.send(
            sender=ActivityEvent, event_id=event.pk, verb=verb, event=event
        ),
        robust=True,
    )
    return event


def _chained_fields(event: ActivityEvent) -> dict[str, Any]:
    # The fields the link covers, by the one list of them (verify_activity reads the same).
    return {name: getattr(event, name) for name in CHAINED_FIELDS}


def _target_type(target: Any) -> str:
    return {
        "RegisteredModel": "model",
        "ModelVersion": "version",
        "Organization": "org",
        "Artifact": "artifact",
        "Comment": "comment",
        "Membership": "membership",
        "Team": "team",
        "ApiToken": "token",
        "ServiceAccount": "service_account",
        "User": "user",
    }.get(type(target).__name__, type(target).__name__.lower())


def _target_repr(target: Any) -> str:
    if isinstance(target, ModelVersion):
        return f"{target.model.name} v{target.number}"
    if isinstance(target, RegisteredModel):
        return target.name
    return str(target)
