"""Notification benchmark (issue 6): activity events dispatched per second.

With a broker (`BENCH_CELERY_BROKER_URL`, or the settings' broker when tasks are not eager) a
Celery worker subprocess (solo pool, one process) on the bench's database takes one
`dispatch_event` task per event; without one, the dispatch runs eagerly in this process. The
figure says which.

Each event has one delivery, an e-mail to a watcher (file backend), so the figure measures
fan-out, the delivery row, its task, rendering and sending one message. The events are
written first with the after-commit enqueue switched off, then all of them are enqueued at
once and the clock runs until every one is dispatched and its e-mail sent.

`run(results)` expects django.setup() done, migrations applied and the demo cast created, on
a throwaway database.
"""

import os
import sys
import time
import uuid
from typing import Any

from bench.workers import forget_broker_connections, start_worker

EVENTS = int(os.environ.get("BENCH_NOTIFY_EVENTS", "500"))
TIMEOUT = int(os.environ.get("BENCH_NOTIFY_TIMEOUT", "300"))

TITLES = {"notify_dispatch": "notification dispatch"}
TARGETS = {"notify_dispatch": "figure only"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(name: str, figure: dict[str, Any]) -> str:
    return (
        f"{figure['events_per_second']:.0f} events/s ({figure['mode']}, "
        f"{figure['events']} events, {figure['emails']} e-mails)"
    )


def _broker() -> str:
    from django.conf import settings

    url = os.environ.get("BENCH_CELERY_BROKER_URL", "")
    if not url and not settings.CELERY_TASK_ALWAYS_EAGER:
        url = settings.CELERY_BROKER_URL
    if not url:
        return ""
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        log(f"  broker {url} does not answer ({exc}): eager mode")
        return ""
    return url


def _make_events(cast) -> list[int]:
    """EVENTS version.created events on a model carol watches, none of them enqueued."""
    from bench.run import dispatch_deferred
    from registry.demo import ensure_shared_model
    from registry.models import ActivityEvent
    from registry.services.registered_models import model_watch
    from registry.services.versions import version_create

    model = ensure_shared_model(cast, f"bench-notify-{uuid.uuid4().hex[:6]}")
    model_watch(actor=cast.carol, model=model)
    with dispatch_deferred():  # as if the broker were down
        for _ in range(EVENTS):
            version_create(actor=cast.alice, model=model)
    return list(
        ActivityEvent.objects.filter(model=model, verb="version.created").values_list(
            "pk", flat=True
        )
    )


def bench_dispatch(cast) -> dict[str, Any]:
    from django.conf import settings

    from notifications.models import Delivery, DeliveryStatus, Dispatch
    from notifications.tasks import dispatch_event, enqueue

    events = _make_events(cast)
    broker = _broker()
    worker = None
    saved = (
        settings.CELERY_TASK_ALWAYS_EAGER,
        settings.CELERY_BROKER_URL,
        settings.CELERY_TASK_DEFAULT_QUEUE,
    )
    queue = f"bench-notify-{uuid.uuid4().hex[:8]}"
    try:
        if broker:
            settings.CELERY_TASK_ALWAYS_EAGER = False
            settings.CELERY_BROKER_URL = broker
            settings.CELERY_TASK_DEFAULT_QUEUE = queue
            os.environ["CELERY_BROKER_URL"] = broker
            forget_broker_connections()
            worker = start_worker(
                broker=broker,
                queue=queue,
                log_path=os.environ.get(
                    "BENCH_WORKER_LOG", str(settings.VAR_DIR / "bench-worker.log")
                ),
                env={"VAR_DIR": str(settings.VAR_DIR), "CELERY_TASK_DEFAULT_QUEUE": queue},
                loglevel="WARNING",
            )
            time.sleep(3)  # connected and consuming; the clock starts at the sweep anyway
        started = time.perf_counter()
        # Only these events: the run's other benchmarks leave theirs undispatched on
        # purpose, and a sweep would hand the worker all of them.
        for event_id in events:
            enqueue(dispatch_event, event_id)
        deadline = time.monotonic() + TIMEOUT
        sent = Delivery.objects.filter(event_id__in=events, status=DeliveryStatus.SENT)
        while Dispatch.objects.filter(event_id__in=events).count() < len(
            events
        ) or sent.count() < len(events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dispatch did not finish within {TIMEOUT} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        if worker is not None:
            worker.stop()
        (
            settings.CELERY_TASK_ALWAYS_EAGER,
            settings.CELERY_BROKER_URL,
            settings.CELERY_TASK_DEFAULT_QUEUE,
        ) = saved
        os.environ.pop("CELERY_BROKER_URL", None)
        forget_broker_connections()
    return {
        "mode": "one Celery worker, Redis" if broker else "eager (no broker)",
        "events": len(events),
        "emails": sent.count(),
        "seconds": round(elapsed, 2),
        "events_per_second": round(len(events) / elapsed, 1),
        "target": TARGETS["notify_dispatch"],
        "met": None,
    }


def run(results: dict) -> None:
    """Add the notification figure to `results`."""
    from registry.demo import ensure_cast

    cast = ensure_cast(passwords=False)
    log(f"notification dispatch, {EVENTS} events ...")
    results["notify_dispatch"] = bench_dispatch(cast)
    log(f"  {TITLES['notify_dispatch']}: {describe('notify_dispatch', results['notify_dispatch'])}")
