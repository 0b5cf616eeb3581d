"""Thin tasks: each takes an id, re-fetches and calls one idempotent service
(docs/notifications.md). The committed activity event is the outbox message; the sweep finds
whatever a broker outage or a dead worker left behind.

Enqueueing never breaks the caller: the message is published once, without retries, and a
failure is logged and remembered for a few seconds, so that an outage does not cost every
request a connection attempt.
"""

import logging
import time
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from notifications.models import DISPATCHED_VERBS
from notifications.sending import delivery_send
from notifications.services import REQUEST_VERBS, approval_applied, event_notify, outbox_sweep
from notifications.sql import event_settle_unheard
from registry.models import ActivityEvent

logger = logging.getLogger(__name__)

# After a publish fails, skip further attempts for this long: the sweep covers them.
BROKER_BACKOFF = 5.0
_broker_down_until = 0.0


def enqueue(task, *args, countdown: int | None = None) -> bool:
    """Publish `task(*args)` once (to run `countdown` seconds from now); False (logged) if
    it was not. Eagerly (the embedded default), the task runs here, and its errors are
    logged like a broker's."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        logger.warning("broker recently down: %s%s left to the sweep", task.name, args)
        return False
    try:
        # No publish retries: the request that committed must not wait on the broker.
        task.apply_async(args, retry=False, countdown=countdown)
    except Exception:
        if not settings.CELERY_TASK_ALWAYS_EAGER:  # eager: the task's own error
            _broker_down_until = time.monotonic() + BROKER_BACKOFF
        logger.exception("could not enqueue %s%s; the sweep will pick it up", task.name, args)
        return False
    return True


def on_activity_committed(
    sender, event_id: int, verb: str, event: ActivityEvent, **kwargs: Any
) -> None:
    """registry.signals.activity_committed: one dispatch task per committed event that may
    reach somebody. An event of a verb nobody is told of needs nothing; one that nobody
    watches or hooks is marked dispatched here, in one statement, without a task. The
    people of a stage change request are found by the task, unless the event says there
    are none: an approval that applied the change (the stage.applied after it is the news)."""
    if verb not in DISPATCHED_VERBS:
        return
    try:
        settle = verb not in REQUEST_VERBS or approval_applied(event)
        if settle and event_settle_unheard(event_id):
            return
    except DatabaseError:
        logger.exception("could not settle event %s here; handing it to a task", event_id)
    enqueue(dispatch_event, event_id)


@shared_task(bind=True, acks_late=True, time_limit=120, soft_time_limit=100)
def dispatch_event(self, event_id: int) -> dict[str, int]:
    """Make the event's deliveries and send its e-mails here: one task per event, not one
    per e-mail. A webhook delivery goes to a task of its own, and so does an e-mail whose
    attempt failed, at its retry's time (eagerly the sweep's: now would be no backoff)."""
    notified = event_notify(event_id=event_id)
    for delivery_id in notified.handed_on:
        enqueue(send_delivery, delivery_id)
    if not self.request.is_eager:
        for delivery_id, retry_in in notified.retries:
            enqueue(send_delivery, delivery_id, countdown=retry_in)
    return {
        "sent": notified.sent,
        "handed_on": len(notified.handed_on),
        "retrying": len(notified.retries),
    }


@shared_task(bind=True, acks_late=True, max_retries=None, time_limit=120, soft_time_limit=100)
def send_delivery(self, delivery_id: int) -> str:
    """Send one delivery; a failure is retried after the backoff the service chose (the
    service counts attempts and gives up, so Celery's own retry count is unbounded)."""
    outcome = delivery_send(delivery_id=delivery_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in)
    if outcome.sent:
        return "sent"
    return "skipped" if outcome.skipped else "failed"


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240)
def sweep_outbox() -> dict[str, int]:
    """Celery beat's periodic sweep (NOTIFY_SWEEP_EVERY): see dispatch_pending."""
    return sweep()


def sweep(older_than: int | None = None) -> dict[str, int]:
    """Enqueue what the outbox left behind; counts found and enqueued of each."""
    events, deliveries = outbox_sweep(older_than=older_than)
    return {
        "events": len(events),
        "events_enqueued": sum(enqueue(dispatch_event, pk) for pk in events),
        "deliveries": len(deliveries),
        "deliveries_enqueued": sum(enqueue(send_delivery, pk) for pk in deliveries),
    }
