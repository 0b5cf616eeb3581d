"""The activity log of an org, filtered to what the caller may view (SPEC 3.1, 3.7), as
pages of JSON or, with Accept: application/x-ndjson, streamed as JSON Lines."""

import json
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from registry.api import schemas as s
from registry.api.pagination import paginate
from registry.api.render import event_json
from registry.errors import Invalid
from registry.models import ActivityEvent, RegisteredModel
from registry.permissions import (
    get_model_for_user,
    get_org_for_user,
    get_version_for_user,
    is_org_admin,
)

router = Router(tags=["activity"])
E = s.ERRORS
NDJSON = "application/x-ndjson"


def _after(value: str) -> Q:
    if value.isdigit():
        if len(value) > 18:
            raise Invalid("after is an event's seq: that number is too large")
        return Q(seq__gt=int(value))
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("after is an event's seq or an ISO 8601 time with its zone") from None
    if when.tzinfo is None:
        raise Invalid("give the time with its time zone, e.g. 2026-03-01T12:00:00Z")
    return Q(created_at__gt=when)


@router.get(
    "/orgs/{org}/activity",
    response={200: s.EventPage, **E},
    openapi_extra={"responses": {200: {"content": {NDJSON: {"schema": {"type": "string"}}}}}},
)
def list_activity(
    request: HttpRequest,
    org: str,
    model: str | None = None,
    version: s.Number | None = None,
    after: str | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    user = request.auth
    found = get_org_for_user(user, org)
    events = ActivityEvent.objects.filter(org=found)
    if version is not None and model is None:
        raise Invalid("version filters within a model: give model too")
    if model is not None:
        registered = get_model_for_user(user, found, model)
        events = events.filter(model_id=registered.pk)
        if version is not None:
            events = events.filter(version_id=get_version_for_user(user, found, model, version).pk)
    elif not is_org_admin(user, found):
        # Members see the events of the models they may view; org-wide events (settings,
        # memberships) and those of deleted models are for org admins.
        visible = RegisteredModel.objects.visible_to(user).filter(org=found).values("pk")
        events = events.filter(model_id__in=visible)
    if after:
        events = events.filter(_after(after))
    if NDJSON in request.headers.get("Accept", ""):
        lines = (
            json.dumps(event_json(e), cls=DjangoJSONEncoder) + "\n"
            for e in events.order_by("seq").iterator(chunk_size=500)
        )
        return StreamingHttpResponse(lines, content_type=NDJSON)
    return paginate(events, keys=["seq"], cursor=cursor, limit=limit, render=event_json)
