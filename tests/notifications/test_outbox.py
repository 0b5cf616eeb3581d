"""The outbox on a Redis broker: committed events are handed over in batches, one drain task
on the queue at a time, and nothing is left behind (docs/notifications.md). The broker is
real; the drain runs in this process, so the test can look between the steps."""

import json

import pytest
import redis

from notifications import tasks
from notifications.models import Dispatch
from registry.models import ActivityEvent
from registry.services.registered_models import model_watch
from registry.services.versions import version_create

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(workers, shared_broker):
    """This test's queue on the shared Redis, with no worker: messages stay where they are."""
    workers.use_broker(shared_broker)
    return redis.Redis.from_url(shared_broker), workers.queue


def queued_tasks(client: redis.Redis, queue: str) -> list[str]:
    return [json.loads(m)["headers"]["task"] for m in client.lrange(queue, 0, -1)]


def outbox(client: redis.Redis, queue: str) -> set[int]:
    return {int(i) for i in client.smembers(tasks.OUTBOX_KEY.format(queue=queue))}


def test_a_burst_of_events_puts_one_drain_on_the_queue(broker, model, alice, carol):
    client, queue = broker
    model_watch(actor=carol, model=model)
    for _ in range(5):
        version_create(actor=alice, model=model)
    created = set(ActivityEvent.objects.filter(verb="version.created").values_list("pk", flat=True))
    assert len(created) == 5
    assert created <= outbox(client, queue)
    assert queued_tasks(client, queue) == ["notifications.tasks.drain_outbox"]
    flag = tasks.OUTBOX_QUEUED_KEY.format(queue=queue)
    assert 0 < client.ttl(flag) <= tasks.OUTBOX_QUEUED_TTL


def test_a_drain_dispatches_every_event_then_the_next_event_queues_another(
    broker, model, alice, carol
):
    client, queue = broker
    model_watch(actor=carol, model=model)
    for _ in range(3):
        version_create(actor=alice, model=model)
    waiting = outbox(client, queue)
    assert tasks.drain_outbox.run(queue) == len(waiting)
    assert outbox(client, queue) == set()
    assert set(Dispatch.objects.values_list("event_id", flat=True)) == waiting
    assert not client.exists(tasks.OUTBOX_QUEUED_KEY.format(queue=queue))
    assert tasks.drain_outbox.run(queue) == 0  # a second drain finds nothing to do

    version_create(actor=alice, model=model)
    assert queued_tasks(client, queue) == ["notifications.tasks.drain_outbox"] * 2
    assert len(outbox(client, queue)) == 1


def test_a_long_backlog_is_handed_to_a_new_drain(broker, model, alice, monkeypatch):
    client, queue = broker
    for _ in range(4):
        version_create(actor=alice, model=model)
    backlog = len(outbox(client, queue))
    client.delete(queue)  # the drain each burst queued
    monkeypatch.setattr(tasks, "DRAIN_SECONDS", 0)  # out of time at once
    assert tasks.drain_outbox.run(queue) == 0
    assert len(outbox(client, queue)) == backlog  # untouched, and handed on
    assert queued_tasks(client, queue) == ["notifications.tasks.drain_outbox"]


def test_a_drain_that_cannot_be_queued_leaves_the_flag_clear(broker, model, alice, monkeypatch):
    client, queue = broker

    def refuse(*args, **kwargs):
        raise ConnectionError("broker refused the message")

    flag = tasks.OUTBOX_QUEUED_KEY.format(queue=queue)
    client.delete(queue, flag)  # the drain the model's creation queued: taken by a worker
    with monkeypatch.context() as refusing:
        refusing.setattr(tasks.drain_outbox, "apply_async", refuse)
        first = version_create(actor=alice, model=model)
    assert not client.exists(flag)
    assert queued_tasks(client, queue) == []
    # The event waits in the outbox (and for the sweep); the next one queues a drain.
    tasks._broker_down_until = 0.0  # as BROKER_BACKOFF seconds later
    second = version_create(actor=alice, model=model)
    assert queued_tasks(client, queue) == ["notifications.tasks.drain_outbox"]
    events = ActivityEvent.objects.filter(version__in=[first, second]).values_list("pk", flat=True)
    assert set(events) <= outbox(client, queue)
