"""Webhooks and their delivery log over HTTP (SPEC 3.8, 4.2).

Who may manage a webhook is the services' rule (`get_webhook_for_user`, and
`Webhook.objects.manageable_by` for the list): org admins for org webhooks, `write` users of
the model for model webhooks. Seeing one follows the model (or the org): a caller who may
not view it gets 404, one who may view but not manage gets 403.
The secret is in the create response only; the web UI's webhook page shows it to managers.
"""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Status
from pydantic import field_validator
from pydantic.json_schema import SkipJsonSchema

from api import schemas as s
from api.pagination import paginate
from notifications.models import Delivery, Webhook
from notifications.services import (
    delivery_replay,
    get_webhook_for_user,
    webhook_create,
    webhook_delete,
    webhook_update,
)
from registry.errors import Invalid, NotFound
from registry.permissions import get_model_for_user, get_org_for_user

router = Router(tags=["webhooks"])
E = s.ERRORS
WEBHOOK = "/orgs/{org}/webhooks/{webhook_id}"
URL_MAX = 500  # Webhook.url's column
_url_shape = URLValidator(schemes=["http", "https"])


def _check_url(value: str) -> str:
    # The shape the web form accepts; whether the target may be reached is the service's
    # SSRF guard (a refusal names the reason).
    if len(value) > URL_MAX:
        raise ValueError(f"at most {URL_MAX} characters")
    try:
        _url_shape(value)
    except DjangoValidationError:
        raise ValueError("not a valid http(s) URL") from None
    return value


# Schemas


class WebhookCreateIn(s.In):
    url: str
    events: list[str]
    model: str | None = None

    _url = field_validator("url")(_check_url)


class WebhookUpdateIn(s.In):
    # Each may be left out (unchanged), never null: the document shows no null.
    url: str | SkipJsonSchema[None] = None
    events: list[str] | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class WebhookOut(s.Schema):
    id: int
    org: str
    model: str | None
    url: str
    events: list[str]
    active: bool
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str
    created_by: str | None
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str


class WebhookPage(s.Schema):
    items: list[WebhookOut]
    next: str | None


class DeliveryEventOut(s.Schema):
    id: int
    seq: int
    verb: str
    created_at: datetime


class DeliveryOut(s.Schema):
    id: int
    webhook: int
    event: DeliveryEventOut
    status: str
    attempts: int
    response_code: int | None
    latency_ms: int | None
    last_error: str
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryPage(s.Schema):
    items: list[DeliveryOut]
    next: str | None


# Rendering


def _webhooks_qs() -> QuerySet:
    return Webhook.objects.select_related("org", "model__org", "created_by")


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.pk,
        "org": webhook.org.slug,
        "model": webhook.model.name if webhook.model_id else None,
        "url": webhook.url,
        "events": webhook.events,
        "active": webhook.active,
        "consecutive_failures": webhook.consecutive_failures,
        "disabled_at": webhook.disabled_at,
        "disabled_reason": webhook.disabled_reason,
        "created_by": webhook.created_by.get_username() if webhook.created_by else None,
        "created_at": webhook.created_at,
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    event = delivery.event
    return {
        "id": delivery.pk,
        "webhook": delivery.webhook_id,
        "event": {
            "id": event.pk,
            "seq": event.seq,
            "verb": event.verb,
            "created_at": event.created_at,
        },
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "latency_ms": delivery.latency_ms,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "sent_at": delivery.sent_at,
    }


# Fetching with authorisation


def _webhook_for_user(user, org: str, webhook_id: int) -> Webhook:
    return get_webhook_for_user(user, webhook_id, org=get_org_for_user(user, org))


# Endpoints


@router.get("/orgs/{org}/webhooks", response={200: WebhookPage, **E})
def list_webhooks(
    request: HttpRequest,
    org: str,
    model: str | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    found = get_org_for_user(request.auth, org)
    webhooks = _webhooks_qs().manageable_by(request.auth, found)
    if model is not None:
        webhooks = webhooks.filter(model=get_model_for_user(request.auth, found, model))
    return paginate(webhooks, keys=["id"], cursor=cursor, limit=limit, render=webhook_json)


@router.post("/orgs/{org}/webhooks", response={201: WebhookCreatedOut, **E})
def create_webhook(request: HttpRequest, org: str, payload: WebhookCreateIn):
    found = get_org_for_user(request.auth, org)
    model = None
    if payload.model is not None:
        model = get_model_for_user(request.auth, found, payload.model, "write")
    webhook = webhook_create(
        actor=request.auth, org=found, model=model, url=payload.url, events=payload.events
    )
    webhook = _webhooks_qs().get(pk=webhook.pk)
    return Status(201, {**webhook_json(webhook), "secret": webhook.secret})


@router.get(WEBHOOK, response={200: WebhookOut, **E})
def get_webhook(request: HttpRequest, org: str, webhook_id: s.Number):
    return webhook_json(_webhook_for_user(request.auth, org, webhook_id))


@router.patch(WEBHOOK, response={200: WebhookOut, **E})
def update_webhook(request: HttpRequest, org: str, webhook_id: s.Number, payload: WebhookUpdateIn):
    webhook = _webhook_for_user(request.auth, org, webhook_id)
    changes = payload.model_dump(exclude_unset=True)
    nulls = sorted(field for field, value in changes.items() if value is None)
    if nulls:
        raise Invalid(f"{', '.join(nulls)} cannot be null: leave a field out to keep it")
    updated = webhook_update(actor=request.auth, webhook=webhook, **changes)
    return webhook_json(_webhooks_qs().get(pk=updated.pk))


@router.delete(WEBHOOK, response={204: None, **E})
def delete_webhook(request: HttpRequest, org: str, webhook_id: s.Number):
    webhook = _webhook_for_user(request.auth, org, webhook_id)
    webhook_delete(actor=request.auth, webhook=webhook)
    return Status(204, None)


@router.get(WEBHOOK + "/deliveries", response={200: DeliveryPage, **E})
def list_deliveries(
    request: HttpRequest,
    org: str,
    webhook_id: s.Number,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    webhook = _webhook_for_user(request.auth, org, webhook_id)
    deliveries = Delivery.objects.filter(webhook=webhook).select_related("event")
    return paginate(deliveries, keys=["-id"], cursor=cursor, limit=limit, render=delivery_json)


@router.post("/deliveries/{delivery_id}/replay", response={202: DeliveryOut, **E})
def replay_delivery(request: HttpRequest, delivery_id: s.Number):
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound(f"delivery #{delivery_id} not found")
    # 404 for an e-mail or a webhook the caller may not see, 403 unless they may manage it:
    # the service's.
    replayed = delivery_replay(actor=request.auth, delivery=delivery)
    # Accepted: the send happens after commit, in a task; the log shows how it went.
    replayed = Delivery.objects.select_related("event").get(pk=replayed.pk)
    return Status(202, delivery_json(replayed))
