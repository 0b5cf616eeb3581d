"""Notification services (SPEC 3.8): fan an activity event out to its recipients, send its
e-mails, sweep the outbox, and manage webhooks and preferences.

Idempotency: a `Delivery` per event × recipient × channel (unique constraints), so however
often an event is dispatched its recipients get one row each. Each attempt leases its row
and marks it once (notifications/sending.py): sending is at least once, marking at most once.

The first attempt at an event's e-mails is its dispatch's (`event_notify`, one connection
for them all); webhooks, and the retries of e-mails that failed, are
`sending.delivery_send`'s.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from approvals.models import RequestKind, StageChangeRequest
from notifications.emails import event_mail, message_for
from notifications.models import (
    DISPATCHED_VERBS,
    VERB_KINDS,
    WEBHOOK_EVENTS,
    Channel,
    Delivery,
    DeliveryStatus,
    Dispatch,
    Kind,
    NotificationPreference,
    Webhook,
)
from notifications.sending import (
    NO_VIEW,
    claim,
    email_failed,
    email_sent,
    finish,
    lease_end,
)
from notifications.sql import (
    event_audience,
    event_mark_dispatched,
    opted_out,
    request_with_requester,
)
from notifications.ssrf import check_url
from registry.errors import Invalid, NotFound
from registry.models import ActivityEvent, Organization, RegisteredModel, Watch
from registry.permissions import (
    Access,
    members_access,
    model_access,
    require,
    require_org,
)
from registry.services.activity import event_record

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

WATCHED_VERBS = {
    "version.created",
    "stage.applied",
    "lock.raised",
    "lock.lowered",
    "flag.raised",
}
REQUESTER_VERBS = {"stage.approved", "stage.rejected", "stage.applied"}
# The reviewers who were asked are told of the request, and of its cancellation.
REVIEWER_VERBS = {"stage.requested", "stage.cancelled"}
# Events that concern a stage change request: its reviewers or its requester may be told.
REQUEST_VERBS = REQUESTER_VERBS | REVIEWER_VERBS


# Recipients -----------------------------------------------------------------------------


def reviewers_of(model: RegisteredModel, *, exclude_id: int | None = None) -> list:
    """Who is asked to review a request on `model`: the active members of its org who may
    approve on it (org admins, grants to them or their teams), but `exclude_id` (the
    requester). The version page shows the same list before a request is filed."""
    return [user for user, _ in _reviewers(model, exclude_id=exclude_id)]


def _reviewers(model: RegisteredModel, *, exclude_id: int | None) -> list[tuple[object, Access]]:
    """reviewers_of, each with their access (read once: it also says who may view)."""
    return [
        (user, access)
        for user, access in members_access(model)
        if access.approve and user.pk != exclude_id
    ]


def _request(event: ActivityEvent) -> StageChangeRequest | None:
    request_id = (event.data or {}).get("request")
    if request_id is None:
        return None
    return request_with_requester(request_id)


def _tells_requester(event: ActivityEvent, request: StageChangeRequest) -> bool:
    """One e-mail per decision: a rejection; an approval that leaves more to come; the
    change taking effect (`stage.applied` of the requested version, which says it was
    approved). The approval that applies a stage change is followed by that event in the
    same transaction, so it sends nothing itself; an alias request's change has no such
    event, so its last approval is the news."""
    if event.verb == "stage.applied":
        return event.version_id == request.version_id
    return event.verb != "stage.approved" or not _approval_applied(event, request)


def _approval_applied(event: ActivityEvent, request: StageChangeRequest | None = None) -> bool:
    """Whether a `stage.approved` event's approval applied a stage change. Read from the
    event (each request event carries the request's kind, an approval the count it needed),
    so that such an approval costs no read of the request; `request` for older events."""
    data = event.data or {}
    kind = data.get("kind") or (request.kind if request is not None else None)
    required = data.get("required_approvals")
    if required is None and request is not None:
        required = request.required_approvals
    if kind != RequestKind.STAGE or required is None:
        return False
    approvals = ((event.changes or {}).get("approvals") or [0, 0])[-1]
    return approvals >= required


def approval_applied(event: ActivityEvent) -> bool:
    """Whether the event, as recorded, is an approval that applied a stage change: nobody
    is e-mailed of it, the stage.applied event after it is the news."""
    return event.verb == "stage.approved" and _approval_applied(event)


def email_recipients(event: ActivityEvent) -> list:
    """Who gets an e-mail about `event`: watchers, reviewers or the requester (by verb), who
    may view the model now, have an address and have not opted out of the kind. The actor
    is never told of their own action."""
    return _recipients(event)[1]


def _recipients(
    event: ActivityEvent, *, watched: bool = True, model: RegisteredModel | None = None
) -> tuple[RegisteredModel | None, list]:
    """email_recipients, with the model (and its org) it read to decide. `watched=False`:
    the caller has read that nobody watches the model, so the watchers are not looked up;
    `model`: the caller has read the event's model with its org (event_audience)."""
    kind = VERB_KINDS.get(event.verb)
    if kind is None or event.model_id is None:
        return None, []
    if approval_applied(event):
        return None, []  # the stage.applied event after it is the news (_tells_requester)
    users: dict[int, object] = {}
    if watched and event.verb in WATCHED_VERBS:
        # Watch rows go with their model: a deleted model has none.
        for watch in Watch.objects.filter(model_id=event.model_id).select_related("user"):
            users[watch.user_id] = watch.user
    # A request's requester is the actor of its stage.requested: no read of the request.
    asked = event.verb == "stage.requested"
    request = _request(event) if event.verb in REQUEST_VERBS and not asked else None
    decided = None  # the requester, told of a decision on their request
    if event.verb in REQUESTER_VERBS and request is not None and _tells_requester(event, request):
        decided = request.requester_id
        users[decided] = request.requester
    if event.verb not in REVIEWER_VERBS and not users:
        return None, []  # nobody to tell: no further query
    if model is None:
        model = RegisteredModel.objects.select_related("org").filter(pk=event.model_id).first()
    if model is None:
        return None, []
    access: dict[int, Access] = {}
    if event.verb in REVIEWER_VERBS:
        requester_id = request.requester_id if request is not None else event.actor_id
        for user, can in _reviewers(model, exclude_id=requester_id):
            users[user.pk] = user
            access[user.pk] = can
    users.pop(event.actor_id, None)
    if not users:
        return model, []
    # The requester's kind is the decision's, whatever the verb ("Decisions on my requests").
    others = [pk for pk in users if pk != decided]
    refused = opted_out(others, kind, decided, Kind.STAGE_DECIDED)
    told = []
    for pk, user in sorted(users.items()):
        if pk in refused or not user.is_active or not user.email:
            continue
        if (access[pk] if pk in access else model_access(user, model)).view:
            told.append(user)
    return model, told


def webhook_targets(event: ActivityEvent) -> list[Webhook]:
    """The active webhooks of the event's org or model that asked for its verb and existed
    when it happened: a new webhook is told of what comes after it, never of the past (a
    sweep may dispatch an old event after the webhook was made)."""
    hooks = Webhook.objects.filter(
        org_id=event.org_id, active=True, created_at__lte=event.created_at
    ).filter(Q(model__isnull=True) | Q(model_id=event.model_id))
    return [hook for hook in hooks.order_by("pk") if event.verb in hook.events]


# Dispatch -------------------------------------------------------------------------------


@dataclass
class _Fanout:
    """What _fan_out read: the event and its model when it made the deliveries, the users it
    found may be told now, and the event's pending deliveries as
    (pk, channel, user_id, attempts, next_attempt_at). `leased`: the e-mails among them that
    it made already leased to itself, their attempt counted (attempts is then 0, the count
    before it): its task sends them without claiming them."""

    event: ActivityEvent | None = None
    model: RegisteredModel | None = None
    told: dict[int, object] = field(default_factory=dict)
    pending: list[tuple] = field(default_factory=list)
    leased: set[int] = field(default_factory=set)


def _fan_out(event_id: int, *, lease: bool = False) -> _Fanout:
    """The event's deliveries, made once, and what is pending of them. `lease`: the caller
    sends the e-mails now, so those it may send are made leased to it."""
    audience = event_audience(event_id)
    if audience is None or audience.verb not in DISPATCHED_VERBS:
        return _Fanout()
    fanout = _Fanout()
    if not audience.dispatched:
        wanted = []
        if audience.watched or audience.hooked or audience.verb in REQUEST_VERBS:
            event = audience.event
            # What the audience read said nobody is (a watcher, a webhook) is not looked up.
            model, users = _recipients(event, watched=audience.watched, model=audience.model)
            hooks = webhook_targets(event) if audience.hooked else []
            fanout = _Fanout(event=event, model=model, told={user.pk: user for user in users})
            wanted = [Delivery(event=event, user=user, channel=Channel.EMAIL) for user in users]
            wanted += [
                Delivery(event=event, webhook=hook, channel=Channel.WEBHOOK) for hook in hooks
            ]
        if not wanted:
            event_mark_dispatched(event_id, 0)
            return fanout
        # The marker first: the one dispatch that inserts it makes the deliveries, and they
        # commit together (a dispatch that dies before is redone by the sweep; one that dies
        # after, before sending, leaves leases that run out, and the sweep sends them).
        with transaction.atomic(savepoint=False):
            if event_mark_dispatched(event_id, len(wanted)):
                emails = [d for d in wanted if d.channel == Channel.EMAIL and lease]
                emails = emails[:EMAILS_PER_TASK]
                until = lease_end(timezone.now())
                for delivery in emails:
                    delivery.lease_until, delivery.attempts = until, 1
                Delivery.objects.bulk_create(wanted)
                fanout.leased = {delivery.pk for delivery in emails}
                # Each as it was before this dispatch: no attempt yet, none due later.
                fanout.pending = [(d.pk, d.channel, d.user_id, 0, None) for d in wanted]
                return fanout
        # Another dispatch made them (it may be sending them): what is pending now.
    fanout.pending = list(
        Delivery.objects.filter(event_id=event_id, status=DeliveryStatus.PENDING)
        .order_by("pk")
        .values_list("pk", "channel", "user_id", "attempts", "next_attempt_at")
    )
    return fanout


def event_dispatch(*, event_id: int) -> list[int]:
    """Create the event's deliveries (once, however often this runs) and mark it dispatched.
    Returns the ids of its deliveries still pending.

    One read tells whether anybody may be told (a watcher, an active webhook of the org or
    model, a request's people): an event without costs that read and the marker's insert."""
    return [delivery_id for delivery_id, *_ in _fan_out(event_id).pending]


# At most this many of an event's e-mails are sent by its own task; the others get a task
# each, so that a model with many watchers does not run its dispatch into the time limit.
EMAILS_PER_TASK = 50


@dataclass
class Notified:
    """What event_notify did: the e-mails it sent, the deliveries it leaves to a task of
    their own (webhooks, e-mails past EMAILS_PER_TASK), and the e-mails whose attempt
    failed, with the seconds until their next."""

    sent: int = 0
    handed_on: list[int] = field(default_factory=list)
    retries: list[tuple[int, int]] = field(default_factory=list)


def event_notify(*, event_id: int) -> Notified:
    """event_dispatch, then the first attempt at each of its e-mails that is due, here and
    on one connection. Each e-mail is its delivery's: leased, sent and marked sent on its
    own row as delivery_send does, so that a second dispatch or the sweep sends none of them
    again, and one that fails stays pending for its retry while the others go out."""
    fanout = _fan_out(event_id, lease=True)
    now = timezone.now()
    notified = Notified()
    emails = []
    for delivery_id, channel, user_id, attempts, next_attempt_at in fanout.pending:
        if channel != Channel.EMAIL:
            notified.handed_on.append(delivery_id)
        elif next_attempt_at is None or next_attempt_at <= now:
            emails.append((delivery_id, user_id, attempts))
        # Otherwise an attempt failed: the next comes at its time, from its task or the sweep.
    notified.handed_on += [delivery_id for delivery_id, _, _ in emails[EMAILS_PER_TASK:]]
    if emails:
        _send_emails(fanout, event_id, emails[:EMAILS_PER_TASK], notified)
    return notified


def _send_emails(fanout: _Fanout, event_id: int, emails: list, notified: Notified) -> None:
    event = fanout.event or ActivityEvent.objects.get(pk=event_id)
    model = fanout.model
    if model is None:  # pending from an earlier dispatch: read now
        model = RegisteredModel.objects.select_related("org").filter(pk=event.model_id).first()
    users = dict(fanout.told)
    missing = {user_id for _, user_id, _ in emails} - users.keys()
    if missing:
        users.update(get_user_model().objects.in_bulk(missing))
    mail = None
    connection = get_connection()
    opened = False
    unreachable: Exception | None = None  # the mail server, when it could not be reached
    try:
        for delivery_id, user_id, attempts in emails:
            if delivery_id not in fanout.leased and not claim(delivery_id):
                continue  # another sender holds it, or it is no longer pending
            user = users.get(user_id)
            # Those _recipients found just now may view; an earlier dispatch's are asked again.
            if user_id not in fanout.told and (
                model is None or user is None or not model_access(user, model).view
            ):
                finish(delivery_id, status=DeliveryStatus.FAILED, last_error=NO_VIEW)
                continue
            if mail is None:
                mail = event_mail(event=event, org_slug=model.org.slug, model_name=model.name)
            if not opened and unreachable is None:
                try:
                    connection.open()
                    opened = True
                except Exception as exc:  # one wait for the server (EMAIL_TIMEOUT) per task
                    unreachable = exc
            error = unreachable
            if error is None:
                try:
                    connection.send_messages([message_for(mail, user)])
                except Exception as exc:  # SMTP and its network: every failure is retried later
                    error = exc
            if error is not None:
                retry_in = email_failed(delivery_id, attempts + 1, error)
                notified.retries.append((delivery_id, retry_in))
                continue
            email_sent(delivery_id)
            notified.sent += 1
    finally:
        if opened:
            connection.close()


def outbox_sweep(*, older_than: int | None = None, max_age: int = 7 * 86400):
    """What a broker outage or a dead worker left behind: events older than `older_than`
    seconds without a dispatch (within `max_age`), and pending deliveries that nobody holds
    and whose next attempt is due. Returns (event ids, delivery ids)."""
    if older_than is None:
        older_than = settings.NOTIFY_SWEEP_AFTER
    now = timezone.now()
    before = now - timedelta(seconds=older_than)
    events = (
        ActivityEvent.objects.filter(
            created_at__lte=before, created_at__gte=now - timedelta(seconds=max_age)
        )
        .filter(verb__in=sorted(DISPATCHED_VERBS))
        .filter(~Exists(Dispatch.objects.filter(event_id=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    deliveries = (
        Delivery.objects.filter(status=DeliveryStatus.PENDING, created_at__lte=before)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return list(events), list(deliveries)


# Webhooks -------------------------------------------------------------------------------


def _clean_events(events) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise Invalid("choose at least one event for the webhook")
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise Invalid(f"unknown webhook events: {', '.join(map(str, unknown))}")
    return sorted(set(events))


def _require_manager(actor, org: Organization, model: RegisteredModel | None) -> None:
    """Who may manage a webhook, on every surface: an org admin for the org's webhooks, a
    user with write on the model for the model's. NotFound for one who may not see it (not a
    member of the org; may not view the model), Forbidden for one who sees it only.
    (Webhook.objects.manageable_by is the same rule as a list's filter.)"""
    if model is None:
        require_org(actor, org, "admin")
    else:
        if model.org_id != org.pk:
            raise NotFound(f"model {model.name} not found")
        require(actor, model, "write")


def _describe(webhook: Webhook) -> dict:
    return {
        "webhook": webhook.pk,
        "url": webhook.url,
        "events": webhook.events,
        "active": webhook.active,
    }


def _event(actor, webhook: Webhook, verb: str, changes: dict | None = None) -> None:
    event_record(
        actor=actor,
        org=webhook.org,
        verb=verb,
        target=webhook,
        target_type="webhook",
        model=webhook.model,
        changes=changes or {},
        data={"url": webhook.url, "events": webhook.events},
    )


@transaction.atomic
def webhook_create(
    *, actor, org: Organization, url: str, events: list[str], model: RegisteredModel | None = None
) -> Webhook:
    """Register a webhook; its target must pass the SSRF guard now (and again at send)."""
    _require_manager(actor, org, model)
    events = _clean_events(events)
    check_url(url)
    webhook = Webhook.objects.create(org=org, model=model, url=url, events=events, created_by=actor)
    _event(actor, webhook, "webhook.created", {"url": [None, url], "events": [None, events]})
    return webhook


@transaction.atomic
def webhook_update(
    *,
    actor,
    webhook: Webhook,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
) -> Webhook:
    """Change a webhook; re-activating it clears its failure count."""
    webhook = (
        Webhook.objects.select_for_update(of=("self",))
        .select_related("org", "model")
        .get(pk=webhook.pk)
    )
    _require_manager(actor, webhook.org, webhook.model)
    changes = {}
    if url is not None and url != webhook.url:
        check_url(url)
        changes["url"] = [webhook.url, url]
        webhook.url = url
    if events is not None:
        events = _clean_events(events)
        if events != webhook.events:
            changes["events"] = [webhook.events, events]
            webhook.events = events
    if active is not None and active != webhook.active:
        changes["active"] = [webhook.active, active]
        webhook.active = active
        if active:
            webhook.consecutive_failures = 0
            webhook.disabled_at = None
            webhook.disabled_reason = ""
    if changes:
        webhook.save()
        _event(actor, webhook, "webhook.updated", changes)
    return webhook


@transaction.atomic
def webhook_delete(*, actor, webhook: Webhook) -> None:
    webhook = (
        Webhook.objects.select_for_update(of=("self",))
        .select_related("org", "model")
        .get(pk=webhook.pk)
    )
    _require_manager(actor, webhook.org, webhook.model)
    _event(actor, webhook, "webhook.deleted", {"url": [webhook.url, None]})
    webhook.delete()


def get_webhook_for_user(user, pk: int | None, *, org: Organization | None = None) -> Webhook:
    """The webhook `pk` (of `org`, when given) with its org, model and creator, for `user`
    to manage: NotFound unless they may see it (view its model; be a member of its org, for
    an org's webhook), Forbidden unless they may manage it (_require_manager's rule)."""
    webhooks = Webhook.objects.select_related("org", "model__org", "created_by")
    if org is not None:
        webhooks = webhooks.filter(org=org)
    webhook = webhooks.filter(pk=pk).first()
    if webhook is None:
        raise NotFound(f"webhook #{pk} not found")
    try:
        _require_manager(user, webhook.org, webhook.model)
    except NotFound:
        raise NotFound(f"webhook #{pk} not found") from None
    return webhook


def delivery_replay(*, actor, delivery: Delivery) -> Delivery:
    """Send a webhook delivery again, as a new attempt on the same row (which becomes
    pending again): for a receiver that lost it or a webhook fixed after failing."""
    try:
        # An e-mail has no webhook: it is its recipient's, and as absent to a webhook's
        # manager as a delivery of a webhook they may not see.
        webhook = get_webhook_for_user(actor, delivery.webhook_id)
    except NotFound:
        raise NotFound(f"delivery #{delivery.pk} not found") from None
    if not webhook.active:
        raise Invalid("the webhook is disabled: enable it before replaying")
    Delivery.objects.filter(pk=delivery.pk).exclude(
        status=DeliveryStatus.PENDING, lease_until__gt=timezone.now()
    ).update(status=DeliveryStatus.PENDING, lease_until=None, next_attempt_at=None, sent_at=None)
    from notifications.tasks import enqueue, send_delivery

    transaction.on_commit(lambda: enqueue(send_delivery, delivery.pk))
    delivery.refresh_from_db()
    return delivery


# Preferences and watching ---------------------------------------------------------------


def preferences_of(user) -> dict[str, bool]:
    stored = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "enabled"))
    return {kind: stored.get(kind, True) for kind in Kind.values}


@transaction.atomic
def preferences_set(*, actor, enabled: dict[str, bool]) -> dict[str, bool]:
    """Opt in or out per kind (missing kinds keep their setting)."""
    for kind, on in enabled.items():
        if kind not in Kind.values:
            raise Invalid(f"unknown notification kind {kind!r}")
        NotificationPreference.objects.update_or_create(
            user=actor, kind=kind, defaults={"enabled": bool(on)}
        )
    return preferences_of(actor)
