"""One delivery's attempt (SPEC 3.8): take its lease, send it (an e-mail, or a signed webhook
POST to an address checked again now), and mark it sent, or record the failure and when the
next attempt is due.

Sending takes a lease on the row with a conditional update; only the holder sends and marks
it sent, and marking happens once (`status=pending` in the same update). A sender that dies
leaves its lease to expire and the sweep hands the delivery to another: sending is at least
once, marking at most once. A webhook that keeps failing is disabled.
"""

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import sql
from notifications.emails import event_mail, message_for
from notifications.models import Channel, Delivery, DeliveryStatus, Webhook
from notifications.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from notifications.ssrf import check_url
from registry.errors import Invalid
from registry.models import ActivityEvent, Organization, RegisteredModel
from registry.permissions import model_access

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

BACKOFF_CAP = 3600


@dataclass
class Outcome:
    sent: bool = False
    skipped: bool = False  # someone else holds it, or it is no longer pending
    retry_in: int | None = None
    error: str = ""


def _lease_seconds() -> int:
    return settings.WEBHOOK_TIMEOUT + 5


def lease_end(now: datetime) -> datetime:
    """When a lease taken at `now` runs out: time for one attempt."""
    return now + timedelta(seconds=_lease_seconds())


def claim(delivery_id: int) -> bool:
    """Lease a pending delivery nobody holds, counting the attempt; True if this call took it
    (notifications.sql.CLAIM_SQL)."""
    now = timezone.now()
    return sql.delivery_claim(delivery_id, now, lease_end(now))


def backoff(attempts: int) -> int:
    """Seconds before attempt `attempts + 1`: base × 2^(attempts-1), capped below the broker's
    visibility timeout so that a countdown never outlives it."""
    cap = min(BACKOFF_CAP, settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2)
    return int(min(cap, settings.WEBHOOK_RETRY_BASE * 2 ** max(attempts - 1, 0)))


def finish(delivery_id: int, **fields) -> None:
    # Marking happens once: only a pending row changes.
    Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        lease_until=None, **fields
    )


def delivery_send(*, delivery_id: int) -> Outcome:
    """Send one pending delivery if no one else is; mark it sent, or schedule its retry."""
    if not claim(delivery_id):
        return Outcome(skipped=True)
    delivery = Delivery.objects.select_related("event", "user", "webhook").get(pk=delivery_id)
    if delivery.channel == Channel.EMAIL:
        return _send_email(delivery)
    return _send_webhook(delivery)


NO_VIEW = "recipient may not view"


def _send_email(delivery: Delivery) -> Outcome:
    event = delivery.event
    model = RegisteredModel.objects.select_related("org").filter(pk=event.model_id).first()
    if model is None or not model_access(delivery.user, model).view:
        finish(delivery.pk, status=DeliveryStatus.FAILED, last_error=NO_VIEW)
        return Outcome(error=NO_VIEW)
    mail = event_mail(event=event, org_slug=model.org.slug, model_name=model.name)
    try:
        message_for(mail, delivery.user).send()
    except Exception as exc:  # SMTP and its network: every failure is retried later
        retry_in = email_failed(delivery.pk, delivery.attempts, exc)
        return Outcome(retry_in=retry_in, error=_error(exc))
    email_sent(delivery.pk)
    return Outcome(sent=True)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def email_failed(delivery_id: int, attempts: int, exc: Exception) -> int:
    """Record the failure of attempt number `attempts` and when the next is due (backoff);
    returns its seconds."""
    error = _error(exc)
    retry_in = backoff(attempts)
    next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
    finish(delivery_id, last_error=error, next_attempt_at=next_attempt_at)
    logger.warning("e-mail delivery %s failed: %s", delivery_id, error)
    return retry_in


def email_sent(delivery_id: int) -> None:
    """finish(delivery_id, status=SENT, sent_at=now, last_error=""), in one plain statement
    (notifications.sql.SENT_SQL): every e-mail ends here."""
    sql.delivery_sent(delivery_id, timezone.now())


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


def host_header(target) -> str:
    """The Host header of a checked webhook URL: its host, and its port when not the scheme's."""
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
        "Host": host_header(target),
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
        finish(delivery.pk, status=DeliveryStatus.FAILED, last_error="the webhook is disabled")
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
        finish(
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
            finish(delivery.pk, status=DeliveryStatus.FAILED, next_attempt_at=None, **fields)
            if disable:
                Delivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).exclude(
                    pk=delivery.pk
                ).update(status=DeliveryStatus.FAILED, last_error="the webhook is disabled")
            retry_in = None
        else:
            retry_in = backoff(delivery.attempts)
            fields["next_attempt_at"] = timezone.now() + timedelta(seconds=retry_in)
            finish(delivery.pk, **fields)
    if disable:
        logger.warning("webhook %s: %s", webhook.pk, webhook.disabled_reason)
    logger.info("webhook delivery %s failed (%s); retry in %s s", delivery.pk, error, retry_in)
    return Outcome(retry_in=retry_in, error=error)
