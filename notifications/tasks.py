"""Thin tasks: take ids, re-fetch, call the idempotent services (docs/notifications.md).

Enqueueing never breaks the caller: a broker that does not answer is logged, remembered for
a few seconds (so an outage does not slow every request), and the sweep picks up the events
and deliveries left behind.
"""

import logging
import time

from celery import current_task, shared_task
from django.conf import settings

from notifications.models import Channel, Delivery
from notifications.services import delivery_send, event_dispatch, outbox_sweep

logger = logging.getLogger(__name__)

# After an enqueue fails, skip further attempts for this long: the sweep covers them.
BROKER_BACKOFF = 5.0
_broker_down_until = 0.0


def _enqueue(task, *args) -> bool:
    global _broker_down_until
    if not settings.CELERY_TASK_ALWAYS_EAGER and time.monotonic() < _broker_down_until:
        logger.warning("broker recently down: %s%s left to the sweep", task.name, args)
        return False
    options = {}
    parent = current_task.request if current_task else None
    if parent is not None and not parent.is_eager:
        # A follow-up task stays on the queue its parent came from (a worker dedicated to
        # notifications keeps the whole chain).
        queue = (parent.delivery_info or {}).get("routing_key")
        if queue:
            options["queue"] = queue
    try:
        # No publish retries: the request that committed must not wait on the broker.
        task.apply_async(args, retry=False, **options)
    except Exception:
        if not settings.CELERY_TASK_ALWAYS_EAGER:  # eager: a task's own error, not the broker
            _broker_down_until = time.monotonic() + BROKER_BACKOFF
        logger.exception("could not enqueue %s%s; the sweep will pick it up", task.name, args)
        return False
    _broker_down_until = 0.0
    return True


def enqueue_event(event_id: int) -> bool:
    """The on_commit hook of event_record: the event row is the outbox message."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # The embedded default: run it here without Celery's eager machinery, which costs
        # more than the dispatch when nobody is to be told. Errors are logged, never raised.
        try:
            dispatch_event(event_id)
        except Exception:
            logger.exception("could not dispatch event %s; the sweep will pick it up", event_id)
            return False
        return True
    return _enqueue(dispatch_event, event_id)


def enqueue_delivery(delivery_id: int) -> bool:
    return _enqueue(send_delivery, delivery_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def dispatch_event(event_id: int) -> int:
    """Fan the event out, send its e-mails here and hand its webhook deliveries to tasks of
    their own (each with its own retries). Returns the number of deliveries handled."""
    pending = event_dispatch(event_id=event_id)
    if not pending:
        return 0
    channels = dict(Delivery.objects.filter(pk__in=pending).values_list("pk", "channel"))
    for delivery_id in pending:
        if channels.get(delivery_id) == Channel.EMAIL:
            delivery_send(delivery_id=delivery_id)
        else:
            enqueue_delivery(delivery_id)
    return len(pending)


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
        "events_enqueued": sum(_enqueue(dispatch_event, pk) for pk in events),
        "deliveries": len(deliveries),
        "deliveries_enqueued": sum(_enqueue(send_delivery, pk) for pk in deliveries),
    }
