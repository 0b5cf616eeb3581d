"""A worker outlives a broker outage (SPEC 3.8, docs/operations.md): the worker `make worker`
starts (prefork pool, embedded beat) runs against a redis-server of the test's own, which is
stopped for a minute, with a task in the middle of a delivery, and started again on the same
port, empty. The worker process stays up, reconnects by itself, and every event reaches the
webhook receiver once: those committed before and after the outage through their own tasks,
those committed during it through beat's outbox sweep."""

import time
from collections import Counter

import pytest

from notifications import tasks as notification_tasks
from notifications.models import Delivery, DeliveryStatus
from notifications.services import webhook_create
from registry.models import ActivityEvent
from registry.services.versions import version_create

from .test_worker import verified, wait

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# What the acceptance asks a worker to outlive.
OUTAGE = 60
# The worker's sweep, every few seconds for events a second old, so that the test does not
# wait out the production defaults (every 60 s, for events 120 s old).
SWEEP = {"NOTIFY_SWEEP_EVERY": "3", "NOTIFY_SWEEP_AFTER": "1"}


def test_it_outlives_a_minute_without_redis_and_delivers_everything_after(
    workers, own_redis, receiver, tmp_path, model, alice
):
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["version.created"]
    )
    workers.extra_env.update(SWEEP)
    # Where kombu dumps the message it could not put back (docs/operations.md): not /tmp.
    workers.extra_env["TMPDIR"] = str(tmp_path)
    own_redis.start()
    workers.use_broker(own_redis.url)
    worker = workers.start(as_deployed=True)
    # The first delivery is held by the receiver: its task is running, its message not yet
    # acknowledged, when Redis goes away.
    receiver.delay = 2
    version_create(actor=alice, model=model)
    wait(lambda: receiver.arrived == 1, 30, "the first delivery did not start", workers)
    own_redis.stop()
    down = time.monotonic()
    receiver.delay = 0
    for _ in range(5):
        version_create(actor=alice, model=model)  # committed; its task cannot be published
    while time.monotonic() - down < OUTAGE:
        if worker.process.poll() is not None:
            pytest.fail(
                f"the worker exited ({worker.process.returncode}) during the outage:\n"
                f"{workers.logs()[-6000:]}"
            )
        time.sleep(1)
    assert len(receiver.hits) == 1

    own_redis.start()
    notification_tasks._broker_down_until = 0.0  # as BROKER_BACKOFF seconds later
    version_create(actor=alice, model=model)
    created = set(ActivityEvent.objects.filter(verb="version.created").values_list("pk", flat=True))
    assert len(created) == 7

    wait(lambda: len(receiver.ok_hits()) >= 7, 90, "not every event arrived", workers)
    time.sleep(1)  # a duplicate would arrive now
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in workers.logs()
    counts = Counter(p["id"] for p in verified(hook, receiver))
    assert set(counts) == created  # 0 lost
    assert set(counts.values()) == {1}  # 0 duplicated
    assert Delivery.objects.filter(webhook=hook, status=DeliveryStatus.SENT).count() == 7
