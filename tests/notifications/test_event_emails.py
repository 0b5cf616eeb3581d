"""An event's e-mails are sent by its own dispatch task, on one connection: one task per
event, not one per e-mail (issue 16). Each e-mail keeps its delivery's lease, attempt count
and retries; webhooks, and e-mails whose attempt failed, go to `send_delivery` tasks of their
own. In eager mode, on any database; `send_delivery` and the sweep are the real ones."""

import smtplib
from datetime import timedelta

import pytest
from celery.signals import task_prerun
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone

from approvals.services import request_approve, request_create
from notifications.models import Delivery, DeliveryStatus, Dispatch
from notifications.sending import NO_VIEW, backoff
from notifications.services import (
    Notified,
    event_dispatch,
    event_notify,
    outbox_sweep,
    webhook_create,
)
from notifications.tasks import dispatch_event, sweep
from registry.models import ActivityEvent, Stage, Visibility
from registry.services.registered_models import model_update, model_watch
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


class Backend(locmem.EmailBackend):
    """Django's test backend, recording which connection sent each message, refusing the
    addresses in `refused` as an SMTP server would, and unreachable while `down`."""

    connections: list[int] = []
    refused: set[str] = set()
    down = False
    opens = 0

    def open(self):
        Backend.opens += 1
        if Backend.down:
            raise ConnectionRefusedError("the mail server does not answer")
        return super().open()

    def send_messages(self, messages):
        for message in messages:
            if set(message.to) & Backend.refused:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"no such user")})
            Backend.connections.append(id(self))
        return super().send_messages(messages)


@pytest.fixture
def backend(settings):
    settings.EMAIL_BACKEND = f"{__name__}.Backend"
    Backend.connections, Backend.refused, Backend.down, Backend.opens = [], set(), False, 0
    yield Backend
    Backend.connections, Backend.refused, Backend.down = [], set(), False


@pytest.fixture
def ran():
    """The tasks that ran (eagerly), in order, by name and arguments."""
    tasks = []

    def record(sender=None, args=None, **kwargs):
        tasks.append((sender.name.rsplit(".", 1)[-1], tuple(args)))

    task_prerun.connect(record, weak=False)
    yield tasks
    task_prerun.disconnect(record)


@pytest.fixture
def enqueued(monkeypatch):
    """What the dispatch task hands on, recorded instead of published."""
    handed = []

    def record(task, *args, countdown=None):
        handed.append((task.name.rsplit(".", 1)[-1], args, countdown))
        return True

    monkeypatch.setattr("notifications.tasks.enqueue", record)
    return handed


@pytest.fixture
def watchers(model, admin, bob, carol):
    for user in (admin, bob, carol):
        model_watch(actor=user, model=model)
    return [admin, bob, carol]


def addresses() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


def states(event: ActivityEvent) -> dict[str, tuple]:
    """Each e-mail delivery of `event` by its user: (status, attempts, leased)."""
    rows = Delivery.objects.filter(event=event, channel="email").select_related("user")
    return {d.user.username: (d.status, d.attempts, d.lease_until is not None) for d in rows}


def created(model, alice) -> ActivityEvent:
    """A new version's event, not yet dispatched (no commit hooks run here)."""
    version = version_create(actor=alice, model=model)
    return ActivityEvent.objects.get(verb="version.created", version=version)


def test_it_sends_an_events_three_emails_in_one_task_on_one_connection(
    committed, backend, ran, model, alice, watchers
):
    version = committed(version_create, actor=alice, model=model)
    event = ActivityEvent.objects.get(verb="version.created", version=version)
    assert ran == [("dispatch_event", (event.pk,))]  # no send_delivery task
    assert addresses() == sorted(user.email for user in watchers)
    assert len(backend.connections) == 3 and len(set(backend.connections)) == 1
    sent = (DeliveryStatus.SENT, 1, False)
    assert states(event) == {"admin": sent, "bob": sent, "carol": sent}
    assert Delivery.objects.filter(event=event, sent_at__isnull=True).count() == 0


def test_it_leaves_an_email_that_failed_for_its_retry_and_sends_the_others(
    committed, backend, ran, model, alice, bob, watchers
):
    backend.refused = {bob.email}
    version = committed(version_create, actor=alice, model=model)
    event = ActivityEvent.objects.get(verb="version.created", version=version)
    # Eagerly, a retry now would be no backoff: the sweep takes it when it is due.
    assert ran == [("dispatch_event", (event.pk,))]
    assert addresses() == sorted(user.email for user in watchers if user != bob)
    assert states(event)["bob"] == (DeliveryStatus.PENDING, 1, False)
    failed = Delivery.objects.get(event=event, user=bob)
    assert failed.last_error.startswith("SMTPRecipientsRefused")
    due = timezone.now() + timedelta(seconds=backoff(1))
    assert due - timedelta(seconds=5) < failed.next_attempt_at <= due
    assert failed.pk not in outbox_sweep(older_than=0)[1]  # not due yet

    Delivery.objects.filter(pk=failed.pk).update(next_attempt_at=timezone.now())
    backend.refused = set()
    ran.clear()
    sweep(older_than=0)
    assert ("send_delivery", (failed.pk,)) in ran
    assert addresses() == sorted(user.email for user in watchers)  # bob once, nobody twice
    assert states(event)["bob"] == (DeliveryStatus.SENT, 2, False)


def test_it_hands_a_failed_email_to_a_retrying_task_at_its_backoff(
    backend, enqueued, model, alice, bob, watchers
):
    backend.refused = {bob.email}
    event = created(model, alice)
    result = dispatch_event.run(event.pk)  # as a worker runs it: not eagerly
    failed = Delivery.objects.get(event=event, user=bob)
    assert enqueued == [("send_delivery", (failed.pk,), backoff(1))]
    assert result == {"sent": 2, "handed_on": 0, "retrying": 1}


def test_it_leaves_every_email_for_its_retry_when_the_mail_server_is_down(
    backend, enqueued, model, alice, watchers
):
    backend.down = True
    event = created(model, alice)
    assert dispatch_event.run(event.pk) == {"sent": 0, "handed_on": 0, "retrying": 3}
    assert mail.outbox == []
    assert backend.opens == 1  # one wait for a server that does not answer, not one per e-mail
    pending = (DeliveryStatus.PENDING, 1, False)
    assert states(event) == {"admin": pending, "bob": pending, "carol": pending}
    assert {countdown for _, _, countdown in enqueued} == {backoff(1)}
    assert Dispatch.objects.filter(event=event).exists()  # dispatched: nothing lost


def test_it_hands_each_webhook_delivery_to_a_task_of_its_own(
    settings, backend, enqueued, model, admin, alice, carol
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    hook = webhook_create(
        actor=admin, org=model.org, url="http://127.0.0.1:9/hook", events=["version.created"]
    )
    model_watch(actor=carol, model=model)
    event = created(model, alice)
    dispatch_event.run(event.pk)
    posted = Delivery.objects.get(event=event, webhook=hook)
    assert enqueued == [("send_delivery", (posted.pk,), None)]
    assert (posted.status, posted.attempts) == (DeliveryStatus.PENDING, 0)
    assert addresses() == [carol.email]


def test_it_gives_emails_past_emails_per_task_a_task_each(
    monkeypatch, committed, backend, ran, model, alice, watchers
):
    monkeypatch.setattr("notifications.services.EMAILS_PER_TASK", 2)
    version = committed(version_create, actor=alice, model=model)
    event = ActivityEvent.objects.get(verb="version.created", version=version)
    last = Delivery.objects.filter(event=event).order_by("pk").last()
    assert ran == [("dispatch_event", (event.pk,)), ("send_delivery", (last.pk,))]
    assert addresses() == sorted(user.email for user in watchers)
    assert {state for state in states(event).values()} == {(DeliveryStatus.SENT, 1, False)}


def test_a_second_dispatch_sends_only_what_is_due_and_not_held(backend, model, alice, watchers):
    event = created(model, alice)
    event_dispatch(event_id=event.pk)  # the rows, as if the task died before sending
    now = timezone.now()
    held = Delivery.objects.filter(event=event, user__username="bob")
    held.update(lease_until=now + timedelta(seconds=60))  # another sender has it
    later = Delivery.objects.filter(event=event, user__username="carol")
    later.update(attempts=1, next_attempt_at=now + timedelta(seconds=60))  # failed once
    assert event_notify(event_id=event.pk) == Notified(sent=1)
    assert [message.to for message in mail.outbox] == [["admin@example.com"]]
    assert states(event) == {
        "admin": (DeliveryStatus.SENT, 1, False),
        "bob": (DeliveryStatus.PENDING, 0, True),
        "carol": (DeliveryStatus.PENDING, 1, False),
    }
    assert event_notify(event_id=event.pk) == Notified()  # nothing more, however often
    assert len(mail.outbox) == 1


def test_a_second_dispatch_asks_again_who_may_view(backend, model, admin, alice, carol):
    model_watch(actor=carol, model=model)
    event = created(model, alice)
    event_dispatch(event_id=event.pk)
    model_update(actor=admin, model=model, visibility=Visibility.PRIVATE)  # carol loses view
    assert event_notify(event_id=event.pk) == Notified()
    assert mail.outbox == []
    failed = Delivery.objects.get(event=event, user=carol)
    assert (failed.status, failed.last_error) == (DeliveryStatus.FAILED, NO_VIEW)


def test_it_mails_a_watched_event_in_a_fixed_number_of_queries_and_three_per_watcher(
    backend, model, admin, alice, bob, carol, django_assert_num_queries
):
    model_watch(actor=carol, model=model)
    event = created(model, alice)
    # The event with its audience and its model, its watchers, opt-outs, the marker, the
    # deliveries (made leased to this dispatch: no read-back, no claim); per watcher: may
    # they view, the mark.
    with django_assert_num_queries(5 + 2):
        assert event_notify(event_id=event.pk) == Notified(sent=1)
    for user in (admin, bob):
        model_watch(actor=user, model=model)
    event = created(model, alice)
    with django_assert_num_queries(5 + 2 * 3):
        assert event_notify(event_id=event.pk) == Notified(sent=3)
    assert {state for state in states(event).values()} == {(DeliveryStatus.SENT, 1, False)}


def test_an_approval_that_applies_the_change_costs_two_queries(
    model, alice, bob, django_assert_num_queries
):
    """Its news is the stage.applied event that follows: nobody to tell, and no read of the
    request to know it (the event carries the count it needed)."""
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request)
    approved = ActivityEvent.objects.get(verb="stage.approved")
    with django_assert_num_queries(2):  # the event with its audience, the marker
        assert event_notify(event_id=approved.pk) == Notified()
    assert Dispatch.objects.get(event=approved).deliveries == 0


def test_a_dispatch_that_dies_before_sending_leaves_leases_the_sweep_waits_out(
    backend, monkeypatch, model, alice, carol
):
    """The e-mails a dispatch makes for itself are leased to it: if it dies before sending,
    nobody sends them until the lease runs out; then the sweep hands them on."""
    model_watch(actor=carol, model=model)
    event = created(model, alice)

    def dies(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr("notifications.services._send_emails", dies)
    with pytest.raises(RuntimeError):
        event_notify(event_id=event.pk)
    monkeypatch.undo()
    assert states(event) == {"carol": (DeliveryStatus.PENDING, 1, True)}
    delivery = Delivery.objects.get(event=event)
    assert delivery.pk not in outbox_sweep(older_than=0)[1]
    assert event_notify(event_id=event.pk) == Notified()  # a second dispatch: held
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now())
    assert delivery.pk in outbox_sweep(older_than=0)[1]
    sweep(older_than=0)
    assert addresses() == [carol.email]
    assert states(event) == {"carol": (DeliveryStatus.SENT, 2, False)}
