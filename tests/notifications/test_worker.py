"""Notifications through a real Redis broker and real Celery workers (subprocesses on the
test's PostgreSQL database): e-mails read from the file backend, webhooks to a local
receiver, a broker outage, a worker killed mid-delivery, and a failing receiver."""

import email
import time
from collections import Counter
from email.message import Message
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from approvals.services import request_approve, request_create
from notifications import tasks as notification_tasks
from notifications.models import Delivery, DeliveryStatus, Dispatch, Webhook
from notifications.services import webhook_create
from notifications.signing import verify
from notifications.tasks import sweep
from registry.models import ActivityEvent, ModelVersion, Stage
from registry.services.registered_models import model_watch
from registry.services.versions import version_create

from .conftest import forget_broker_connections

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEPARATOR = "\n" + "-" * 79 + "\n"


def read_mail(folder: Path) -> list[Message]:
    """The messages Django's file backend wrote (one file per connection, `-` lines apart)."""
    messages = []
    if not folder.exists():
        return messages
    for path in sorted(folder.glob("*.log")):
        for chunk in path.read_text().split(SEPARATOR):
            if chunk.strip():
                messages.append(email.message_from_string(chunk))
    return messages


def wait(condition, timeout: float, what: str, workers=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = workers.logs()[-4000:] if workers else ""
            pytest.fail(f"{what} within {timeout} s\n{logs}")
        time.sleep(0.1)


def verified(hook: Webhook, receiver) -> list[dict]:
    payloads = []
    for hit in receiver.ok_hits():
        headers = {k.lower(): v for k, v in hit.headers.items()}
        assert verify(
            hook.secret,
            headers["x-modelvault-timestamp"],
            hit.body,
            headers["x-modelvault-signature"],
        )
        payloads.append(hit.payload)
    return payloads


def html_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()
    return ""


def test_it_mails_and_posts_a_request_an_approval_and_a_version(
    workers, shared_broker, receiver, model, admin, alice, bob, carol
):
    model_watch(actor=carol, model=model)
    hook = webhook_create(
        actor=alice,
        org=model.org,
        model=model,
        url=receiver.url,
        events=["version.created", "stage.requested", "stage.approved", "stage.applied"],
    )
    workers.use_broker(shared_broker)
    workers.start()

    version = version_create(actor=alice, model=model)
    wait(lambda: len(read_mail(workers.mail_dir)) >= 1, 30, "no mail for the version", workers)
    request = request_create(
        actor=alice, version=version, to_stage=Stage.STAGING, comment="<b>ready</b>"
    )
    wait(lambda: len(read_mail(workers.mail_dir)) >= 3, 30, "no mail for the request", workers)
    request_approve(actor=bob, request=request, comment="lgtm")
    wait(lambda: len(read_mail(workers.mail_dir)) >= 5, 30, "no mail for the approval", workers)
    wait(lambda: len(receiver.ok_hits()) >= 4, 30, "the receiver got too few posts", workers)
    time.sleep(0.5)  # anything extra would arrive now

    mails = sorted((m["To"], m["Subject"]) for m in read_mail(workers.mail_dir))
    assert mails == sorted(
        [
            (carol.email, "[Modelvault] New version 1 of fraud"),
            (admin.email, "[Modelvault] Review requested: fraud v1 to staging"),
            (bob.email, "[Modelvault] Review requested: fraud v1 to staging"),
            # One e-mail per decision: the approval that takes effect leaves the news to
            # stage.applied (docs/notifications.md).
            (alice.email, "[Modelvault] fraud v1 moved to staging"),
            (carol.email, "[Modelvault] fraud v1 moved to staging"),
        ]
    )
    review = next(m for m in read_mail(workers.mail_dir) if m["To"] == bob.email)
    assert "&lt;b&gt;ready&lt;/b&gt;" in html_part(review)
    assert "https://modelvault.example/" in html_part(review)

    payloads = verified(hook, receiver)
    assert [p["event"] for p in payloads] == [
        "version.created",
        "stage.requested",
        "stage.approved",
        "stage.applied",
    ]
    assert {p["id"] for p in payloads} == set(
        ActivityEvent.objects.filter(verb__in=[p["event"] for p in payloads]).values_list(
            "pk", flat=True
        )
    )
    assert Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 9  # 5 e-mails, 4 posts


def test_it_delivers_every_event_once_after_a_broker_outage(
    workers, own_redis, receiver, caplog, model, alice, bob
):
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    workers.use_broker(own_redis.url)  # not started: the broker is down
    started = time.monotonic()
    for _ in range(100):
        version = version_create(actor=alice, model=model)
        request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
        request_approve(actor=bob, request=request)
    outage = time.monotonic() - started
    assert ModelVersion.objects.filter(model=model, stage=Stage.STAGING).count() == 100
    assert outage < 120, f"100 stage changes took {outage:.1f} s with the broker down"
    assert "could not enqueue notifications.tasks.dispatch_event" in caplog.text
    applied = set(ActivityEvent.objects.filter(verb="stage.applied").values_list("pk", flat=True))
    assert len(applied) == 100
    assert receiver.hits == [] and not Delivery.objects.exists()

    own_redis.start()
    forget_broker_connections()
    notification_tasks._broker_down_until = 0.0  # as BROKER_BACKOFF seconds later
    workers.start()
    call_command("dispatch_pending", older_than=0)

    wait(lambda: len(receiver.ok_hits()) >= 100, 240, "not every event arrived", workers)
    time.sleep(1)  # a duplicate would arrive now
    counts = Counter(p["id"] for p in verified(hook, receiver))
    assert set(counts) == applied  # 0 lost
    assert set(counts.values()) == {1}  # 0 duplicated
    deliveries = Delivery.objects.filter(webhook=hook)
    assert deliveries.count() == 100
    assert set(deliveries.values_list("status", "attempts")) == {(DeliveryStatus.SENT, 1)}


def test_it_delivers_every_event_after_a_worker_is_killed(
    workers, shared_broker, receiver, model, alice
):
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["version.created"]
    )
    receiver.delay = 0.3
    workers.use_broker(shared_broker)
    first = workers.start()
    for _ in range(20):
        version_create(actor=alice, model=model)
    created = set(ActivityEvent.objects.filter(verb="version.created").values_list("pk", flat=True))
    wait(lambda: len(receiver.hits) >= 3, 30, "the first worker delivered nothing", workers)
    first.kill()
    assert len(receiver.hits) < 20
    workers.start()

    def all_sent() -> bool:
        sweep(older_than=0)  # hands over what the dead worker held once its lease runs out
        return Delivery.objects.filter(webhook=hook, status=DeliveryStatus.SENT).count() == 20

    wait(all_sent, 90, "not every delivery was sent after the crash", workers)
    arrived = {p["id"] for p in verified(hook, receiver)}
    assert arrived == created  # every event reached the receiver
    deliveries = Delivery.objects.filter(webhook=hook)
    assert Counter(deliveries.values_list("event_id", flat=True)) == Counter(
        {pk: 1 for pk in created}
    )  # and its effect is recorded once
    assert all(d.sent_at is not None for d in deliveries)


def test_it_gets_a_delivery_through_after_a_500(
    workers, shared_broker, receiver, model, alice, bob
):
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    receiver.statuses = [500, 200]
    workers.use_broker(shared_broker)
    workers.start()
    version = version_create(actor=alice, model=model)
    request_approve(
        actor=bob, request=request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    )
    wait(lambda: len(receiver.ok_hits()) == 1, 30, "the retry did not arrive", workers)
    first, second = receiver.hits
    assert first.body == second.body
    delivery = Delivery.objects.get(webhook=hook)
    wait(lambda: Delivery.objects.get(pk=delivery.pk).status == "sent", 10, "not marked sent")
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.response_code) == (2, 200)


def test_it_disables_a_webhook_that_keeps_failing(
    workers, shared_broker, receiver, model, alice, bob
):
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    receiver.statuses = [500]
    workers.extra_env["WEBHOOK_MAX_FAILURES"] = "3"
    workers.use_broker(shared_broker)
    workers.start()
    version = version_create(actor=alice, model=model)
    request_approve(
        actor=bob, request=request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    )
    wait(
        lambda: not Webhook.objects.get(pk=hook.pk).active, 30, "the webhook stayed active", workers
    )
    hook.refresh_from_db()
    delivery = Delivery.objects.get(webhook=hook)
    assert len(receiver.hits) == 3
    assert "disabled after 3 consecutive failures" in hook.disabled_reason
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert "disabled after 3 consecutive failures" in delivery.last_error
    assert "disabled after 3 consecutive failures" in workers.logs()


def worker_backends() -> set[tuple[int, object]]:
    """(pid, backend_start) of the other PostgreSQL sessions on this test's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return set(cursor.fetchall())


def test_it_keeps_one_database_connection_across_a_workers_tasks(
    workers, shared_broker, model, alice, carol
):
    model_watch(actor=carol, model=model)  # somebody to tell: each event is a task
    workers.use_broker(shared_broker)
    workers.start()
    version_create(actor=alice, model=model)
    dispatched = Dispatch.objects.filter(event__verb="version.created")
    wait(lambda: dispatched.count() == 1, 30, "the first event was not dispatched", workers)
    backends = worker_backends()
    assert len(backends) == 1  # the worker's, kept after its task
    for _ in range(10):
        version_create(actor=alice, model=model)
    wait(lambda: dispatched.count() == 11, 30, "not every event was dispatched", workers)
    assert worker_backends() == backends  # the same session served every task
