"""Notification services (SPEC 3.8): fan an activity event out to its recipients, send each
delivery, sweep the outbox, and manage webhooks and preferences.

Idempotency: a `Delivery` per event × recipient × channel (unique constraints), so however
often an event is dispatched its recipients get one row each. Sending takes a lease on the
row with a conditional update; only the holder sends and marks it sent, and marking happens
once (`status=pending` in the same update). A sender that dies leaves its lease to expire
and the sweep hands the delivery to another: sending is at least once, marking at most once.
"""

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from approvals.models import RequestKind, StageChangeRequest
from notifications.emails import build_message
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
from notifications.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from notifications.sql import event_audience
from notifications.ssrf import check_url
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Membership, Organization, RegisteredModel, Watch
from registry.permissions import is_org_admin, model_access, require, require_org
from registry.services.activity import event_record

if TYPE_CHECKING:
    import httpx

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
BACKOFF_CAP = 3600


# Recipients -----------------------------------------------------------------------------


def reviewers_of(model: RegisteredModel, *, exclude_id: int | None = None) -> list:
    """Who is asked to review a request on `model`: the active members of its org who may
    approve on it (org admins, grants to them or their teams), but `exclude_id` (the
    requester). The version page shows the same list before a request is filed."""
    members = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(pk__in=Membership.objects.filter(org=model.org).values("user_id")))
        .exclude(pk=exclude_id)
        .order_by("pk")
    )
    return [user for user in members if model_access(user, model).approve]


def _request(event: ActivityEvent) -> StageChangeRequest | None:
    request_id = (event.data or {}).get("request")
    if request_id is None:
        return None
    return StageChangeRequest.objects.filter(pk=request_id).select_related("requester").first()


def _tells_requester(event: ActivityEvent, request: StageChangeRequest) -> bool:
    """One e-mail per decision: a rejection; an approval that leaves more to come; the
    change taking effect (`stage.applied` of the requested version, which says it was
    approved). The approval that applies a stage change is followed by that event in the
    same transaction, so it sends nothing itself; an alias request's change has no such
    event, so its last approval is the news."""
    if event.verb == "stage.applied":
        return event.version_id == request.version_id
    if event.verb != "stage.approved" or request.kind != RequestKind.STAGE:
        return True
    data = event.data or {}
    approvals = ((event.changes or {}).get("approvals") or [0, 0])[-1]
    return approvals < data.get("required_approvals", request.required_approvals)


def email_recipients(event: ActivityEvent) -> list:
    """Who gets an e-mail about `event`: watchers, reviewers or the requester (by verb), who
    may view the model now, have an address and have not opted out of the kind. The actor
    is never told of their own action."""
    kind = VERB_KINDS.get(event.verb)
    if kind is None or event.model_id is None:
        return []
    users: dict[int, object] = {}
    if event.verb in WATCHED_VERBS:
        # Watch rows go with their model: a deleted model has none.
        for watch in Watch.objects.filter(model_id=event.model_id).select_related("user"):
            users[watch.user_id] = watch.user
    request = _request(event) if event.verb in REQUEST_VERBS else None
    decided = None  # the requester, told of a decision on their request
    if event.verb in REQUESTER_VERBS and request is not None and _tells_requester(event, request):
        decided = request.requester_id
        users[decided] = request.requester
    if event.verb not in REVIEWER_VERBS and not users:
        return []  # nobody to tell: no further query
    model = RegisteredModel.objects.select_related("org").filter(pk=event.model_id).first()
    if model is None:
        return []
    if event.verb in REVIEWER_VERBS:
        requester_id = request.requester_id if request is not None else event.actor_id
        for user in reviewers_of(model, exclude_id=requester_id):
            users[user.pk] = user
    users.pop(event.actor_id, None)
    # The requester's kind is the decision's, whatever the verb ("Decisions on my requests").
    opted_out = set(
        NotificationPreference.objects.filter(enabled=False)
        .filter(
            Q(user_id__in=[pk for pk in users if pk != decided], kind=kind)
            | Q(user_id=decided, kind=Kind.STAGE_DECIDED)
        )
        .values_list("user_id", flat=True)
    )
    return [
        user
        for pk, user in sorted(users.items())
        if pk not in opted_out and user.is_active and user.email and model_access(user, model).view
    ]


def webhook_targets(event: ActivityEvent) -> list[Webhook]:
    """The active webhooks of the event's org or model that asked for its verb and existed
    when it happened: a new webhook is told of what comes after it, never of the past (a
    sweep may dispatch an old event after the webhook was made)."""
    hooks = Webhook.objects.filter(
        org_id=event.org_id, active=True, created_at__lte=event.created_at
    ).filter(Q(model__isnull=True) | Q(model_id=event.model_id))
    return [hook for hook in hooks.order_by("pk") if event.verb in hook.events]


# Dispatch -------------------------------------------------------------------------------


def event_dispatch(*, event_id: int) -> list[int]:
    """Create the event's deliveries (once, however often this runs) and mark it dispatched.
    Returns the ids of its deliveries still pending.

    One read tells whether anybody may be told (a watcher, an active webhook of the org or
    model, a request's people): an event without costs that read and the marker's insert."""
    audience = event_audience(event_id)
    if audience is None or audience.verb not in DISPATCHED_VERBS:
        return []
    if not audience.dispatched:
        wanted = []
        if audience.watched or audience.hooked or audience.verb in REQUEST_VERBS:
            event = ActivityEvent.objects.get(pk=event_id)
            wanted = [
                Delivery(event=event, user=user, channel=Channel.EMAIL)
                for user in email_recipients(event)
            ] + [
                Delivery(event=event, webhook=hook, channel=Channel.WEBHOOK)
                for hook in webhook_targets(event)
            ]
            # A dispatch racing this one made the same rows: the unique constraints keep one.
            Delivery.objects.bulk_create(wanted, ignore_conflicts=True)
        # The marker goes last: a dispatch that dies before it is redone by the sweep.
        Dispatch.objects.bulk_create(
            [Dispatch(event_id=event_id, deliveries=len(wanted))], ignore_conflicts=True
        )
        if not wanted:
            return []
    return list(
        Delivery.objects.filter(event_id=event_id, status=DeliveryStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


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


# Sending --------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: bool = False
    skipped: bool = False  # someone else holds it, or it is no longer pending
    retry_in: int | None = None
    error: str = ""


def _lease_seconds() -> int:
    return settings.WEBHOOK_TIMEOUT + 5


def _claim(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            lease_until=now + timedelta(seconds=_lease_seconds()),
            attempts=F("attempts") + 1,
        )
    )


def backoff(attempts: int) -> int:
    """Seconds before attempt `attempts + 1`: base × 2^(attempts-1), capped below the broker's
    visibility timeout so that a countdown never outlives it."""
    cap = min(BACKOFF_CAP, settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2)
    return int(min(cap, settings.WEBHOOK_RETRY_BASE * 2 ** max(attempts - 1, 0)))


def _finish(delivery_id: int, **fields) -> None:
    # Marking happens once: only a pending row changes.
    Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        lease_until=None, **fields
    )


def delivery_send(*, delivery_id: int) -> Outcome:
    """Send one pending delivery if no one else is; mark it sent, or schedule its retry."""
    if not _claim(delivery_id):
        return Outcome(skipped=True)
    delivery = Delivery.objects.select_related("event", "user", "webhook").get(pk=delivery_id)
    if delivery.channel == Channel.EMAIL:
        return _send_email(delivery)
    return _send_webhook(delivery)


def _send_email(delivery: Delivery) -> Outcome:
    event = delivery.event
    model = RegisteredModel.objects.select_related("org").filter(pk=event.model_id).first()
    org = Organization.objects.get(pk=event.org_id)
    if model is None or not model_access(delivery.user, model).view:
        _finish(delivery.pk, status=DeliveryStatus.FAILED, last_error="recipient may not view")
        return Outcome(error="recipient may not view")
    message = build_message(
        event=event, user=delivery.user, org_slug=org.slug, model_name=model.name
    )
    try:
        message.send()
    except Exception as exc:  # SMTP and its network: every failure is retried later
        error = f"{type(exc).__name__}: {exc}"[:500]
        retry_in = backoff(delivery.attempts)
        _finish(
            delivery.pk,
            last_error=error,
            next_attempt_at=timezone.now() + timedelta(seconds=retry_in),
        )
        logger.warning("e-mail delivery %s failed: %s", delivery.pk, error)
        return Outcome(retry_in=retry_in, error=error)
    _finish(delivery.pk, status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="")
    return Outcome(sent=True)


def webhook_payload(event: ActivityEvent, delivery_id: int) -> dict:
    model = RegisteredModel.objects.filter(pk=event.model_id).values_list("name", flat=True)
    org = Organization.objects.filter(pk=event.org_id).values_list("slug", flat=True)
    return {
        "id": event.pk,
        "delivery": delivery_id,
        "event": event.verb,
        "org": org.first(),
        "model": model.first(),
        "version": (event.data or {}).get("number"),
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_name,
        "target": {"type": event.target_type, "id": event.target_id, "repr": event.target_repr},
        "changes": event.changes,
        "data": event.data,
    }


def _host_header(target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _post(webhook: Webhook, delivery: Delivery, body: bytes) -> "httpx.Response":
    import httpx  # see _send_webhook

    # Checked again now, and the connection goes to the address checked (Host header and
    # TLS name stay the URL's), so DNS cannot swap in a private address after the check.
    target = check_url(webhook.url)
    host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Modelvault-Webhook/1",
        "Host": _host_header(target),
        SIGNATURE_HEADER: sign(webhook.secret, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        EVENT_HEADER: delivery.event.verb,
        DELIVERY_HEADER: str(delivery.pk),
    }
    url = f"{target.scheme}://{host}:{target.port}{target.path}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False) as client:
        return client.post(url, content=body, headers=headers, extensions=extensions)


def _send_webhook(delivery: Delivery) -> Outcome:
    # Imported only where a webhook is sent: with what it imports, httpx is 4 MB of every
    # web worker, which never sends one (tests/notifications/test_web_worker_imports.py).
    import httpx

    webhook = delivery.webhook
    if not webhook.active:
        _finish(delivery.pk, status=DeliveryStatus.FAILED, last_error="the webhook is disabled")
        return Outcome(error="the webhook is disabled")
    body = json.dumps(webhook_payload(delivery.event, delivery.pk), sort_keys=True).encode()
    started = time.monotonic()
    code = None
    try:
        response = _post(webhook, delivery, body)
        code = response.status_code
        error = "" if 200 <= code < 300 else f"HTTP {code}"
        if 300 <= code < 400:
            error = f"HTTP {code}: redirects are not followed"
    except Invalid as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = int((time.monotonic() - started) * 1000)
    if not error:
        _finish(
            delivery.pk,
            status=DeliveryStatus.SENT,
            sent_at=timezone.now(),
            response_code=code,
            latency_ms=latency_ms,
            last_error="",
            next_attempt_at=None,
        )
        Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=0)
        return Outcome(sent=True)
    return _webhook_failed(delivery, code, latency_ms, error[:500])


def _webhook_failed(delivery: Delivery, code, latency_ms: int, error: str) -> Outcome:
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=delivery.webhook_id)
        webhook.consecutive_failures += 1
        disable = webhook.active and webhook.consecutive_failures >= settings.WEBHOOK_MAX_FAILURES
        if disable:
            webhook.active = False
            webhook.disabled_at = timezone.now()
            webhook.disabled_reason = (
                f"disabled after {webhook.consecutive_failures} consecutive failures "
                f"(last: {error})"
            )[:300]
        webhook.save(
            update_fields=["consecutive_failures", "active", "disabled_at", "disabled_reason"]
        )
        exhausted = delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        fields = {"response_code": code, "latency_ms": latency_ms, "last_error": error}
        if disable or exhausted or not webhook.active:
            note = webhook.disabled_reason if not webhook.active else "attempts exhausted"
            fields["last_error"] = f"{error}; {note}"[:500]
            _finish(delivery.pk, status=DeliveryStatus.FAILED, next_attempt_at=None, **fields)
            if disable:
                Delivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).exclude(
                    pk=delivery.pk
                ).update(status=DeliveryStatus.FAILED, last_error="the webhook is disabled")
            retry_in = None
        else:
            retry_in = backoff(delivery.attempts)
            fields["next_attempt_at"] = timezone.now() + timedelta(seconds=retry_in)
            _finish(delivery.pk, **fields)
    if disable:
        logger.warning("webhook %s: %s", webhook.pk, webhook.disabled_reason)
    logger.info("webhook delivery %s failed (%s); retry in %s s", delivery.pk, error, retry_in)
    return Outcome(retry_in=retry_in, error=error)


# Webhooks -------------------------------------------------------------------------------


def _clean_events(events) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise Invalid("choose at least one event for the webhook")
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise Invalid(f"unknown webhook events: {', '.join(map(str, unknown))}")
    return sorted(set(events))


def _require_manager(actor, org: Organization, model: RegisteredModel | None) -> None:
    """Org webhooks: org admins. Model webhooks: write permission on the model."""
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


def can_manage_webhook(user, webhook: Webhook) -> bool:
    if webhook.model_id is None:
        return is_org_admin(user, webhook.org)
    return model_access(user, webhook.model).write


def delivery_replay(*, actor, delivery: Delivery) -> Delivery:
    """Send a webhook delivery again, as a new attempt on the same row (which becomes
    pending again): for a receiver that lost it or a webhook fixed after failing."""
    if delivery.webhook_id is None:
        raise Invalid("only webhook deliveries can be replayed")
    webhook = Webhook.objects.select_related("org", "model").get(pk=delivery.webhook_id)
    if not can_manage_webhook(actor, webhook):
        if webhook.model_id and model_access(actor, webhook.model).view:
            raise Forbidden("you may not manage this webhook")
        raise NotFound("delivery not found")
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
