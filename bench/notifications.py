"""Notification benchmark: activity events dispatched per second, and what an event nobody is
to be told of costs the worker.

With a broker (`BENCH_CELERY_BROKER_URL`, or the settings' broker when tasks are not eager) a
Celery worker subprocess (solo pool, one process) on the bench's database takes one
`dispatch_event` task per event; without one, the dispatch runs eagerly in this process.
The figures say which.

Two sets of events, each written first with the after-commit hand-over switched off
(bench.run.dispatch_deferred), then all handed over at once, the clock running until every
one is dispatched:

- `notify_nobody`: events on a model nobody watches, in an org without webhooks (most
  registrations): events per second and the worker's CPU time per event (this process's
  when eager);
- `notify_dispatch`: events on a model carol watches, each with one delivery, an e-mail to
  her (file backend): fan-out, the delivery row, its task, rendering and sending.

`run(results)` expects django.setup() done, migrations applied and the demo cast created, on
a throwaway database.
"""

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.workers import forget_broker_connections, start_worker

EVENTS = int(os.environ.get("BENCH_NOTIFY_EVENTS", "500"))
TIMEOUT = int(os.environ.get("BENCH_NOTIFY_TIMEOUT", "300"))

TITLES = {
    "notify_nobody": "dispatch, nobody to tell",
    "notify_dispatch": "notification dispatch",
}
TARGETS = {"notify_nobody": "figure only", "notify_dispatch": "figure only"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(name: str, figure: dict[str, Any]) -> str:
    if name == "notify_nobody":
        return (
            f"{figure['events_per_second']:.0f} events/s, {figure['cpu_ms_per_event']:.2f} ms "
            f"of {figure['cpu_of']} CPU each ({figure['mode']}, {figure['events']} events)"
        )
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


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (Linux /proc)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _make_events(cast, *, watched: bool) -> list[int]:
    """EVENTS version.created events, none of them handed over yet."""
    from bench.run import dispatch_deferred
    from registry.demo import ensure_shared_model
    from registry.models import ActivityEvent
    from registry.services.registered_models import model_watch
    from registry.services.versions import version_create

    model = ensure_shared_model(cast, f"bench-notify-{uuid.uuid4().hex[:6]}")
    if watched:
        model_watch(actor=cast.carol, model=model)
    with dispatch_deferred():
        for _ in range(EVENTS):
            version_create(actor=cast.alice, model=model)
    return list(
        ActivityEvent.objects.filter(model=model, verb="version.created").values_list(
            "pk", flat=True
        )
    )


def _dispatch(events: list[int], *, emails: bool, worker) -> dict[str, Any]:
    """Hand the events over and wait until each is dispatched (and its e-mail sent)."""
    from notifications.models import Delivery, DeliveryStatus, Dispatch
    from notifications.tasks import dispatch_event, enqueue

    cpu_before = _cpu_seconds(worker.process.pid) if worker else time.process_time()
    started = time.perf_counter()
    # Only these events: the run's other benchmarks leave theirs undispatched on purpose,
    # and a sweep would hand the worker all of them.
    for event_id in events:
        enqueue(dispatch_event, event_id)
    deadline = time.monotonic() + TIMEOUT
    sent = Delivery.objects.filter(event_id__in=events, status=DeliveryStatus.SENT)
    while Dispatch.objects.filter(event_id__in=events).count() < len(events) or (
        emails and sent.count() < len(events)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"dispatch did not finish within {TIMEOUT} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = (_cpu_seconds(worker.process.pid) if worker else time.process_time()) - cpu_before
    return {
        "mode": "one Celery worker, Redis" if worker else "eager (no broker)",
        "events": len(events),
        "emails": sent.count(),
        "seconds": round(elapsed, 2),
        "events_per_second": round(len(events) / elapsed, 1),
        "cpu_ms_per_event": round(cpu / len(events) * 1000, 2),
        "cpu_of": "the worker's" if worker else "this process's",
        "met": None,
    }


def bench_dispatch(cast) -> dict[str, dict[str, Any]]:
    from django.conf import settings

    nobody = _make_events(cast, watched=False)
    watched = _make_events(cast, watched=True)
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
                loglevel="WARNING",  # as in production: no line per task
            )
            time.sleep(3)  # connected and consuming; each figure's clock starts later anyway
        figures = {
            "notify_nobody": _dispatch(nobody, emails=False, worker=worker),
            "notify_dispatch": _dispatch(watched, emails=True, worker=worker),
        }
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
    for name, figure in figures.items():
        figure["target"] = TARGETS[name]
    return figures


def run(results: dict) -> None:
    """Add the notification figures to `results`."""
    from registry.demo import ensure_cast

    cast = ensure_cast(passwords=False)
    log(f"notification dispatch, {EVENTS} events nobody is told of and {EVENTS} e-mailed ...")
    figures = bench_dispatch(cast)
    results.update(figures)
    for name, figure in figures.items():
        log(f"  {TITLES[name]}: {describe(name, figure)}")
