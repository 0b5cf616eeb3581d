"""Recipients, preferences, idempotency and e-mail content, in eager mode (any database)."""

import pytest
from django.core import mail
from django.db.models import Exists, OuterRef, Q

from approvals.services import request_approve, request_create
from notifications.emails import clean_subject
from notifications.models import DISPATCHED_VERBS, Delivery, DeliveryStatus, Dispatch, Kind, Webhook
from notifications.services import (
    event_dispatch,
    outbox_sweep,
    preferences_set,
    webhook_create,
    webhook_update,
)
from notifications.sql import event_audience, event_settle_unheard
from notifications.tasks import dispatch_event, sweep
from registry.demo import ensure_shared_model
from registry.models import ActivityEvent, RegisteredModel, Stage, Visibility, Watch
from registry.services.registered_models import (
    model_create,
    model_delete,
    model_update,
    model_watch,
)
from registry.services.versions import version_create
from tests.registry.test_sql import assert_same

pytestmark = pytest.mark.django_db


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


def test_it_emails_reviewers_but_not_the_requester_of_a_stage_request(
    committed, model, alice, bob, carol, admin
):
    version = version_create(actor=alice, model=model)
    mail.outbox.clear()
    committed(request_create, actor=alice, version=version, to_stage=Stage.STAGING)
    assert recipients() == sorted([admin.email, bob.email])
    assert "Review requested: fraud v1 to staging" in mail.outbox[0].subject


def test_it_emails_the_requester_and_watchers_when_a_request_is_approved(
    committed, model, alice, bob, carol
):
    """The approval that applies the change and the change itself are one e-mail to the
    requester, not two (SPEC 3.8: the requester is told it was approved)."""
    model_watch(actor=carol, model=model)
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_approve, actor=bob, request=request, comment="fine")
    by_subject = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert by_subject == [
        (alice.email, "[Modelvault] fraud v1 moved to staging"),
        (carol.email, "[Modelvault] fraud v1 moved to staging"),
    ]


def test_it_emails_watchers_of_a_new_version_with_text_html_and_a_site_link(
    committed, settings, model, alice, carol
):
    settings.SITE_URL = "https://mv.example"
    model_watch(actor=carol, model=model)
    committed(version_create, actor=alice, model=model)
    assert recipients() == [carol.email]
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert message.alternatives[0][1] == "text/html"
    assert "New version 1 of fraud" in message.body
    assert "https://mv.example/" in message.body
    assert 'href="https://mv.example/' in html


def test_it_tells_no_one_who_can_no_longer_view_the_model(committed, model, alice, admin, carol):
    model_watch(actor=carol, model=model)
    model_update(actor=admin, model=model, visibility=Visibility.PRIVATE)
    committed(version_create, actor=alice, model=model)
    assert carol.email not in recipients()


def test_it_tells_no_outsider_even_with_a_stale_watch_row(committed, model, alice, mallory):
    Watch.objects.create(model=model, user=mallory)
    committed(version_create, actor=alice, model=model)
    assert mallory.email not in recipients()


def test_it_makes_no_delivery_row_for_anyone_who_may_not_view(model, alice, admin, carol, mallory):
    """Not just no e-mail: no row a worker, the admin or a replay could act on."""
    Watch.objects.create(model=model, user=mallory)  # an outsider, as if left over
    model_watch(actor=carol, model=model)
    model_update(actor=admin, model=model, visibility=Visibility.PRIVATE)  # carol loses view
    version_create(actor=alice, model=model)
    event = ActivityEvent.objects.filter(verb="version.created").latest("seq")
    event_dispatch(event_id=event.pk)
    assert not Delivery.objects.filter(event=event, user__in=[carol, mallory]).exists()
    assert Dispatch.objects.get(event=event).deliveries == 0


def test_it_tells_a_new_webhook_nothing_from_before_it_existed(
    settings, model, admin, alice, carol
):
    """An event that a sweep dispatches late must not reach a webhook made after it (carol
    watches, so the event is dispatched to somebody either way)."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # hooks discarded: left for the sweep
    before = ActivityEvent.objects.filter(verb="version.created").latest("seq")
    hook = webhook_create(
        actor=admin, org=model.org, url="http://127.0.0.1:9/hook", events=["version.created"]
    )
    version_create(actor=alice, model=model)
    after = ActivityEvent.objects.filter(verb="version.created").latest("seq")
    assert event_audience(before.pk).hooked is False and event_audience(after.pk).hooked
    sweep_events, _ = outbox_sweep(older_than=0)
    assert {before.pk, after.pk} <= set(sweep_events)
    for event in (before, after):
        event_dispatch(event_id=event.pk)
    assert list(Delivery.objects.filter(webhook=hook).values_list("event", flat=True)) == [after.pk]


def test_it_respects_an_opt_out_per_kind(committed, model, alice, bob, carol):
    model_watch(actor=carol, model=model)
    preferences_set(actor=carol, enabled={Kind.VERSION_CREATED: False})
    committed(version_create, actor=alice, model=model)
    assert carol.email not in recipients()
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_approve, actor=bob, request=request)
    assert carol.email in recipients()  # stage changes are another kind


def test_it_sends_once_however_often_an_event_is_dispatched(model, alice, carol):
    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # no commit hooks here: dispatched by hand
    event = ActivityEvent.objects.get(verb="version.created")
    dispatch_event.delay(event.pk)
    dispatch_event.delay(event.pk)
    event_dispatch(event_id=event.pk)
    assert recipients() == [carol.email]
    delivery = Delivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.user) == (DeliveryStatus.SENT, 1, carol)
    assert Dispatch.objects.filter(event=event).count() == 1


def test_it_sweeps_events_whose_dispatch_never_ran(settings, model, alice, carol):
    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # hooks discarded: as if the broker was down
    assert outbox_sweep(older_than=3600)[0] == []
    pending, _ = outbox_sweep(older_than=0)
    dispatched = ActivityEvent.objects.filter(verb__in=DISPATCHED_VERBS)
    assert pending == sorted(dispatched.values_list("pk", flat=True))
    # The cast's org.created and membership.* events can reach nobody: never swept.
    assert ActivityEvent.objects.exclude(verb__in=DISPATCHED_VERBS).exists()
    counts = sweep(older_than=0)
    assert counts["events_enqueued"] == counts["events"] == len(pending)
    assert recipients() == [carol.email]
    assert outbox_sweep(older_than=0) == ([], [])
    sweep(older_than=0)
    assert len(mail.outbox) == 1


def test_it_escapes_a_comment_with_crlf_and_html_and_adds_no_header(committed, model, alice, bob):
    version = version_create(actor=alice, model=model)
    mail.outbox.clear()
    comment = "ship it\r\nBcc: victim@example.com\r\n\r\n<script>alert(1)</script><b>x</b>"
    committed(request_create, actor=alice, version=version, to_stage=Stage.STAGING, comment=comment)
    message = next(m for m in mail.outbox if m.to == [bob.email])
    raw = message.message()
    assert raw["Bcc"] is None
    assert message.bcc == []
    header_block = raw.as_string().split("\n\n", 1)[0]
    assert "victim@example.com" not in header_block
    html = message.alternatives[0][0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in html
    assert "<script>" not in html


def test_it_keeps_a_subject_on_one_bounded_line():
    subject = clean_subject("a\r\nBcc: x@example.com\u2028" + "y" * 500)
    assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
    assert subject.startswith("a Bcc: x@example.com y")
    assert len(subject) == 150


def test_it_survives_a_dispatch_that_raises(committed, monkeypatch, model, alice, carol, caplog):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("notifications.tasks.event_notify", broken)
    model_watch(actor=carol, model=model)  # somebody to tell: the event goes to its task
    version = committed(version_create, actor=alice, model=model)
    assert version.pk
    assert "could not enqueue notifications.tasks.dispatch_event" in caplog.text


def test_it_sweeps_from_the_command_line(model, alice, carol):
    from io import StringIO

    from django.core.management import call_command

    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)
    out = StringIO()
    call_command("dispatch_pending", older_than=0, stdout=out)
    events = ActivityEvent.objects.filter(verb__in=DISPATCHED_VERBS).count()
    assert f"enqueued {events} of {events} events and 0 of 0 deliveries" in out.getvalue()
    assert recipients() == [carol.email]


def test_it_dispatches_an_event_nobody_can_be_told_of_in_two_queries(
    model, alice, django_assert_num_queries
):
    version_create(actor=alice, model=model)  # nobody watches, no webhook
    event = ActivityEvent.objects.get(verb="version.created")
    with django_assert_num_queries(2):  # the event with its audience, the marker
        assert event_dispatch(event_id=event.pk) == []
    assert Dispatch.objects.get(event=event).deliveries == 0
    assert not Delivery.objects.exists()
    with django_assert_num_queries(2):  # seen dispatched: its pending deliveries
        assert event_dispatch(event_id=event.pk) == []
    assert outbox_sweep(older_than=0)[0] == sorted(
        ActivityEvent.objects.filter(verb__in=DISPATCHED_VERBS)
        .exclude(pk=event.pk)
        .values_list("pk", flat=True)
    )


def test_it_looks_no_further_for_a_verb_nobody_can_be_told_of(
    model, admin, django_assert_num_queries
):
    event = ActivityEvent.objects.get(verb="model.created")
    assert "membership.created" not in DISPATCHED_VERBS
    member = ActivityEvent.objects.filter(verb="membership.created").first()
    assert member is not None
    with django_assert_num_queries(1):
        assert event_dispatch(event_id=member.pk) == []
    assert not Dispatch.objects.filter(event=member).exists()
    assert member.pk not in outbox_sweep(older_than=0)[0]
    assert event.pk in outbox_sweep(older_than=0)[0]


def test_it_tells_a_webhook_of_the_org_of_an_event_nobody_watches(settings, model, admin, alice):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    hook = webhook_create(
        actor=admin, org=model.org, url="http://127.0.0.1:9/hook", events=["version.created"]
    )
    version_create(actor=alice, model=model)  # dispatched by hand below
    event = ActivityEvent.objects.get(verb="version.created")
    pending = event_dispatch(event_id=event.pk)
    assert list(Delivery.objects.filter(event=event).values_list("pk", "webhook")) == [
        (pending[0], hook.pk)
    ]
    assert Dispatch.objects.get(event=event).deliveries == 1


def audience_by_orm(event_id: int):
    """notifications.sql.AUDIENCE_SQL as a queryset: the statement must answer the same."""
    return (
        ActivityEvent.objects.filter(pk=event_id)
        .annotate(
            dispatched=Exists(Dispatch.objects.filter(event_id=OuterRef("pk"))),
            watched=Exists(Watch.objects.filter(model_id=OuterRef("model_id"))),
            hooked=Exists(
                Webhook.objects.filter(
                    org_id=OuterRef("org_id"),
                    active=True,
                    created_at__lte=OuterRef("created_at"),
                ).filter(Q(model__isnull=True) | Q(model_id=OuterRef("model_id")))
            ),
        )
        .values_list("verb", "dispatched", "watched", "hooked")
        .get()
    )


def test_it_reads_an_events_audience_as_the_equivalent_queryset(
    settings, cast, model, admin, alice, carol
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    other = ensure_shared_model(cast, "other")
    version_create(actor=alice, model=model)  # nobody to tell
    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # watched
    webhook_create(
        actor=alice, org=model.org, model=other, url="http://127.0.0.1:9/", events=["alias.set"]
    )
    version_create(actor=alice, model=model)  # another model's webhook only
    version_create(actor=alice, model=other)  # its own model's webhook
    org_hook = webhook_create(
        actor=admin, org=model.org, url="http://127.0.0.1:9/", events=["model.created"]
    )
    version_create(actor=alice, model=model)  # the org's webhook
    webhook_update(actor=admin, webhook=org_hook, active=False)
    version_create(actor=alice, model=model)  # the org's webhook, disabled
    for event in ActivityEvent.objects.filter(verb="version.created")[:2]:
        event_dispatch(event_id=event.pk)  # marked dispatched
    model_delete(actor=admin, model=model_create(actor=admin, org=model.org, name="gone"))
    events = ActivityEvent.objects.values_list("pk", flat=True)
    answers = {pk: event_audience(pk) for pk in events}
    assert {pk: answer[:4] for pk, answer in answers.items()} == {
        pk: audience_by_orm(pk) for pk in events
    }
    # And the event itself, as the ORM reads it.
    names = [field.attname for field in ActivityEvent._meta.fields]
    for pk, answer in answers.items():
        stored = ActivityEvent.objects.get(pk=pk)
        assert [getattr(answer.event, name) for name in names] == [
            getattr(stored, name) for name in names
        ]
        # And its model with its org, as select_related reads them (None without one).
        expected = RegisteredModel.objects.select_related("org").filter(pk=stored.model_id).first()
        if expected is None:
            assert answer.model is None
        else:
            assert_same(answer.model, expected)
            assert_same(answer.model.org, expected.org)
    # Every flag is seen both ways, on events with a model and without, in both orgs.
    for flag in ("dispatched", "watched", "hooked"):
        assert {getattr(answer, flag) for answer in answers.values()} == {True, False}
    assert ActivityEvent.objects.filter(model__isnull=True).exists()
    assert ActivityEvent.objects.filter(org__slug="globex").exists()
    assert any(answer.model is None and answer.event.model_id for answer in answers.values())
    assert event_audience(max(events) + 1) is None


def test_it_settles_an_event_exactly_when_its_audience_is_nobody(
    settings, cast, model, admin, alice, carol
):
    """notifications.sql.SETTLE_SQL marks an event dispatched exactly when the audience
    read (pinned to its queryset above) finds neither a watcher nor a webhook, and once."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    other = ensure_shared_model(cast, "other")
    version_create(actor=alice, model=model)  # nobody to tell
    model_watch(actor=carol, model=model)
    version_create(actor=alice, model=model)  # watched
    webhook_create(
        actor=alice, org=model.org, model=other, url="http://127.0.0.1:9/", events=["alias.set"]
    )
    version_create(actor=alice, model=other)  # its own model's webhook
    org_hook = webhook_create(
        actor=admin, org=model.org, url="http://127.0.0.1:9/", events=["model.created"]
    )
    webhook_update(actor=admin, webhook=org_hook, active=False)
    version_create(actor=alice, model=other)  # the org's webhook, disabled
    events = list(ActivityEvent.objects.order_by("pk").values_list("pk", flat=True))
    expected = {pk: not (audience_by_orm(pk)[2] or audience_by_orm(pk)[3]) for pk in events}
    assert set(expected.values()) == {True, False}
    assert {pk: event_settle_unheard(pk) for pk in events} == expected
    settled = set(Dispatch.objects.values_list("event_id", flat=True))
    assert settled == {pk for pk, unheard in expected.items() if unheard}
    assert set(Dispatch.objects.values_list("deliveries", flat=True)) == {0}
    assert not any(event_settle_unheard(pk) for pk in events)  # once: the marker is there
    assert event_settle_unheard(max(events) + 1) is False


def test_the_listener_hands_on_only_events_somebody_may_be_told_of(
    committed, monkeypatch, model, alice, bob, carol
):
    enqueued = []
    monkeypatch.setattr(
        "notifications.tasks.enqueue", lambda task, *args: enqueued.append((task.name, args))
    )
    unheard = committed(version_create, actor=alice, model=model)
    event = ActivityEvent.objects.get(version=unheard, verb="version.created")
    assert enqueued == []  # settled by the listener, in one statement
    assert Dispatch.objects.get(event=event).deliveries == 0
    assert event.pk not in outbox_sweep(older_than=0)[0]

    committed(model_watch, actor=carol, model=model)  # watch.* reaches nobody: no task
    assert enqueued == []
    watched = committed(version_create, actor=alice, model=model)
    event = ActivityEvent.objects.get(version=watched, verb="version.created")
    assert enqueued == [("notifications.tasks.dispatch_event", (event.pk,))]
    assert not Dispatch.objects.filter(event=event).exists()  # the task's to do

    enqueued.clear()
    committed(request_create, actor=alice, version=unheard, to_stage=Stage.STAGING)
    requested = ActivityEvent.objects.get(verb="stage.requested")
    assert enqueued == [("notifications.tasks.dispatch_event", (requested.pk,))]


def test_the_listener_settles_an_approval_that_applied_the_change(
    committed, monkeypatch, model, admin, alice, bob
):
    """Its news is the stage.applied event after it: nobody to tell, no task. An approval
    that leaves more to come tells the requester: a task."""
    enqueued = []
    monkeypatch.setattr(
        "notifications.tasks.enqueue", lambda task, *args: enqueued.append((task.name, args))
    )
    model_update(actor=admin, model=model, required_approvals=2)
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    committed(request_approve, actor=bob, request=request)
    first = ActivityEvent.objects.get(verb="stage.approved")
    assert enqueued == [("notifications.tasks.dispatch_event", (first.pk,))]

    enqueued.clear()
    committed(request_approve, actor=admin, request=request)
    last = ActivityEvent.objects.filter(verb="stage.approved").latest("seq")
    applied = ActivityEvent.objects.get(verb="stage.applied")
    assert enqueued == [("notifications.tasks.dispatch_event", (applied.pk,))]
    assert Dispatch.objects.get(event=last).deliveries == 0
    assert last.pk not in outbox_sweep(older_than=0)[0]


def test_the_first_marker_wins_and_a_second_changes_nothing(model, alice):
    """notifications.sql.MARK_SQL: the dispatch whose marker goes in makes the deliveries."""
    from notifications.sql import event_mark_dispatched

    version_create(actor=alice, model=model)
    event = ActivityEvent.objects.filter(verb="version.created").latest("seq")
    assert event_mark_dispatched(event.pk, 2) is True
    assert event_mark_dispatched(event.pk, 0) is False
    marker = Dispatch.objects.get(event=event)
    assert marker.deliveries == 2 and marker.dispatched_at is not None
    assert event_audience(event.pk).dispatched
