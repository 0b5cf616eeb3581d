"""The outbox on a real Redis broker: one Celery message per committed event and nothing else
in Redis, an event the broker refused left to the sweep, and a broker that never answers
costing a request a bounded wait (docs/notifications.md). No worker runs here: the messages
stay on the queue for the test to read."""

import base64
import json
import socket
import threading
import time
from collections import Counter

import pytest
import redis

from notifications import tasks
from notifications.models import Delivery, Dispatch
from notifications.services import outbox_sweep
from registry.models import ActivityEvent
from registry.services.registered_models import model_watch
from registry.services.versions import version_create

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(workers, shared_broker):
    """This test's queue on the shared Redis, with no worker: messages stay where they are."""
    workers.use_broker(shared_broker)
    return redis.Redis.from_url(shared_broker), workers.queue


def queued(client: redis.Redis, queue: str) -> list[tuple[str, list]]:
    """(task name, args) of each message waiting on the queue."""
    messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


def dispatches(client: redis.Redis, queue: str) -> Counter:
    return Counter(
        args[0] for name, args in queued(client, queue) if name == tasks.dispatch_event.name
    )


def test_it_puts_one_dispatch_task_per_committed_event_on_the_queue(broker, model, alice, carol):
    client, queue = broker
    model_watch(actor=carol, model=model)
    for _ in range(5):
        version_create(actor=alice, model=model)
    created = ActivityEvent.objects.filter(verb="version.created").values_list("pk", flat=True)
    assert len(created) == 5
    waiting = dispatches(client, queue)
    assert {pk: waiting[pk] for pk in created} == {pk: 1 for pk in created}
    assert {name for name, _ in queued(client, queue)} == {tasks.dispatch_event.name}
    # Celery's queue and kombu's records of it: nothing of the project's own in the broker.
    keys = {key.decode() for key in client.scan_iter(f"*{queue}*")}
    assert queue in keys
    assert {key for key in keys if key != queue and not key.startswith("_kombu.")} == set()


def test_it_leaves_an_event_the_broker_refused_to_the_sweep(
    broker, monkeypatch, caplog, model, alice, carol
):
    client, queue = broker
    model_watch(actor=carol, model=model)
    client.delete(queue)
    refused = []

    def refuse(*args, **kwargs):
        refused.append(args)
        raise ConnectionError("broker refused the message")

    with monkeypatch.context() as refusing:
        refusing.setattr(tasks.dispatch_event, "apply_async", refuse)
        first = version_create(actor=alice, model=model)
        second = version_create(actor=alice, model=model)  # within BROKER_BACKOFF: not tried
    assert len(refused) == 1
    assert "could not enqueue notifications.tasks.dispatch_event" in caplog.text
    assert "broker recently down" in caplog.text
    assert queued(client, queue) == []
    events = set(
        ActivityEvent.objects.filter(version__in=[first, second]).values_list("pk", flat=True)
    )
    assert len(events) == 2 and not Dispatch.objects.filter(event_id__in=events).exists()

    tasks._broker_down_until = 0.0  # as BROKER_BACKOFF seconds later
    counts = tasks.sweep(older_than=0)
    assert counts["events_enqueued"] == counts["events"] >= 2
    assert {pk: dispatches(client, queue)[pk] for pk in events} == {pk: 1 for pk in events}
    # A worker taking each message twice (a redelivery): one delivery per event to carol.
    for _ in range(2):
        for pk in events:
            tasks.dispatch_event.run(pk)
    deliveries = Delivery.objects.filter(event_id__in=events)
    assert sorted(deliveries.values_list("event_id", "user")) == sorted(
        (pk, carol.pk) for pk in events
    )
    assert not events & set(outbox_sweep(older_than=0)[0])


def test_it_waits_a_bounded_time_on_a_broker_that_never_answers(
    workers, settings, caplog, model, alice, carol
):
    model_watch(actor=carol, model=model)  # somebody to tell: the event goes to the broker
    # A listening socket nobody accepts from: the connection is made, no reply ever comes
    # (until it is closed, so that a publish without a timeout fails the test, not hangs).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        workers.use_broker(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        give_up = threading.Timer(30, silent.close)
        give_up.start()
        started = time.monotonic()
        version = version_create(actor=alice, model=model)
        waited = time.monotonic() - started
        give_up.cancel()
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert version.pk
    assert waited < options["socket_connect_timeout"] + options["socket_timeout"] + 2
    assert "could not enqueue notifications.tasks.dispatch_event" in caplog.text
