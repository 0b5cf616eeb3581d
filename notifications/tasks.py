"""Thin tasks: take ids, re-fetch, call the idempotent services (docs/notifications.md).

Enqueueing never breaks the caller: a broker that does not answer is logged, remembered for
a few seconds (so an outage does not slow every request), and the sweep picks up the events
and deliveries left behind.

On a Redis broker, committed events are handed over in batches: the request adds the event
id to the queue's outbox set and puts a `drain_outbox` task on the queue only when none is
waiting there already (a flag set with NX), so a burst of registrations costs one pipelined
Redis round trip each and one task between them, not a Celery message per event.
"""

import logging
import time

import redis
from celery import current_app, current_task, shared_task
from django.conf import settings

from notifications.models import Channel, Delivery
from notifications.services import delivery_send, event_dispatch, outbox_sweep

logger = logging.getLogger(__name__)

# After an enqueue fails, skip further attempts for this long: the sweep covers them.
BROKER_BACKOFF = 5.0
_broker_down_until = 0.0


# The outbox on a Redis broker, per queue: the set of committed event ids not yet taken by
# a drain, and the flag that says a drain task is waiting on the queue. The flag expires, so
# that a drain task lost with a broker restart is followed by another one.
OUTBOX_KEY = "modelvault:outbox:{queue}"
OUTBOX_QUEUED_KEY = "modelvault:outbox:{queue}:queued"
OUTBOX_QUEUED_TTL = 300
# How long one drain task takes events (it sends their e-mails) before it hands the rest
# to a new task of its own, well inside its time limit; and how many it takes at a time.
DRAIN_SECONDS = 60
_DRAIN_BATCH = 20


def _broker_down() -> bool:
    return not settings.CELERY_TASK_ALWAYS_EAGER and time.monotonic() < _broker_down_until


def _broker_failed() -> None:
    global _broker_down_until
    if not settings.CELERY_TASK_ALWAYS_EAGER:  # eager: a task's own error, not the broker
        _broker_down_until = time.monotonic() + BROKER_BACKOFF


def _queue() -> str:
    """The queue a task enqueued now goes to: a follow-up task stays on the queue its parent
    came from (a worker dedicated to notifications keeps the whole chain), anything else
    goes to the default queue."""
    parent = current_task.request if current_task else None
    if parent is not None and not parent.is_eager:
        queue = (parent.delivery_info or {}).get("routing_key")
        if queue:
            return queue
    return current_app.conf.task_default_queue


def _enqueue(task, *args, queue: str | None = None) -> bool:
    global _broker_down_until
    if _broker_down():
        logger.warning("broker recently down: %s%s left to the sweep", task.name, args)
        return False
    try:
        # No publish retries: the request that committed must not wait on the broker.
        task.apply_async(args, retry=False, queue=queue or _queue())
    except Exception:
        _broker_failed()
        logger.exception("could not enqueue %s%s; the sweep will pick it up", task.name, args)
        return False
    _broker_down_until = 0.0
    return True


_outbox_clients: dict[str, redis.Redis] = {}


def _outbox_redis() -> redis.Redis | None:
    """A client of the broker's Redis (one per URL, kept), or None on any other broker."""
    url = current_app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    client = _outbox_clients.get(url)
    if client is None:
        client = _outbox_clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5
        )
    return client


def on_activity_committed(sender, event_id: int, **kwargs) -> None:
    """registry.signals.activity_committed: hand the committed event on to be dispatched."""
    enqueue_event(event_id)


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
    client = _outbox_redis()
    if client is None:
        return _enqueue(dispatch_event, event_id)
    return _outbox_push(client, _queue(), event_id)


def _outbox_push(client: redis.Redis, queue: str, *event_ids: int) -> bool:
    """Add events to the queue's outbox, and queue a drain unless one is waiting.

    The drain clears the flag before it takes ids, so an event added while the flag is still
    set is taken by that drain, and one added after it is cleared queues the next."""
    global _broker_down_until
    if _broker_down():
        logger.warning("broker recently down: events %s left to the sweep", event_ids)
        return False
    flag = OUTBOX_QUEUED_KEY.format(queue=queue)
    try:
        with client.pipeline(transaction=False) as pipe:
            if event_ids:
                pipe.sadd(OUTBOX_KEY.format(queue=queue), *event_ids)
            pipe.set(flag, 1, nx=True, ex=OUTBOX_QUEUED_TTL)
            first = pipe.execute()[-1]
    except Exception:
        _broker_failed()
        logger.exception("could not enqueue events %s; the sweep will pick them up", event_ids)
        return False
    _broker_down_until = 0.0
    if not first:
        return True  # a drain waiting on the queue takes these
    if _enqueue(drain_outbox, queue, queue=queue):
        return True
    try:  # so that the next event queues a drain again
        client.delete(flag)
    except Exception:
        logger.exception("could not clear the outbox flag of queue %s", queue)
    return False


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


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240)
def drain_outbox(queue: str) -> int:
    """Dispatch the events in the queue's outbox (Redis brokers), oldest first in each
    batch, for up to DRAIN_SECONDS, then hand what is left to a new drain. An event whose
    dispatch fails is logged and left to the sweep. Returns the number of events taken."""
    client = _outbox_redis()
    if client is None:
        return 0
    client.delete(OUTBOX_QUEUED_KEY.format(queue=queue))
    taken, deadline = 0, time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        batch = client.spop(OUTBOX_KEY.format(queue=queue), _DRAIN_BATCH)
        if not batch:
            return taken
        for event_id in sorted(int(raw) for raw in batch):
            try:
                # The task's function, in this task's request: its follow-up deliveries
                # stay on this queue.
                dispatch_event.run(event_id)
            except Exception:
                logger.exception("could not dispatch event %s; the sweep will pick it up", event_id)
        taken += len(batch)
    if client.scard(OUTBOX_KEY.format(queue=queue)):
        _outbox_push(client, queue)
    return taken


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
    client = _outbox_redis() if not settings.CELERY_TASK_ALWAYS_EAGER else None
    if client is None:
        enqueued = sum(_enqueue(dispatch_event, pk) for pk in events)
    else:  # into the outbox at once, for one drain
        enqueued = len(events) if events and _outbox_push(client, _queue(), *events) else 0
    return {
        "events": len(events),
        "events_enqueued": enqueued,
        "deliveries": len(deliveries),
        "deliveries_enqueued": sum(_enqueue(send_delivery, pk) for pk in deliveries),
    }
