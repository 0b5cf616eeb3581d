from typing import Any

from django.db import transaction
from django.utils import timezone

from registry import sql
from registry.audit import GENESIS, link_hash
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
    acting = bool(getattr(actor, "pk", None))
    values: dict[str, Any] = {
        "org_id": org.pk,
        "created_at": timezone.now(),
        "actor_id": actor.pk if acting else None,
        "actor_name": actor.get_username() if acting else "",
        "verb": verb,
        "target_type": target_type or _target_type(target),
        "target_id": str(target.pk),
        "target_repr": _target_repr(target)[:300],
        "model_id": model.pk if model is not None else None,
        "version_id": version.pk if version is not None else None,
        "changes": changes or {},
        "data": data or {},
    }
    head = sql.chain_head_locked(org.pk)
    if head is None:
        chain_start(org)  # an org made other than by org_create, which starts its chain
        head = sql.chain_head_locked(org.pk)
    seq, prev_hash = head
    values.update(seq=seq + 1, prev_hash=prev_hash)
    values["hash"] = link_hash(prev_hash, values)
    event = sql.event_insert(values)
    # The instances the caller gave, as ActivityEvent(org=..., ...) would hold them.
    event.org, event.model, event.version = org, model, version
    if acting:
        event.actor = actor
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
