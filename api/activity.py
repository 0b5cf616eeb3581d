"""The activity log of an org, filtered to what the caller may view (SPEC 3.1, 3.7): pages
of JSON; with Accept: application/x-ndjson, streamed as JSON Lines; with ?format=jsonl|csv
(or Accept: text/csv), streamed as a verifiable export file (registry/export.py)."""

import json
from datetime import datetime
from typing import Literal

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from api import schemas as s
from api.pagination import paginate
from api.render import event_json
from registry.errors import Invalid
from registry.export import CONTENT_TYPES, export_for, parse_time
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
CSV = "text/csv"
TEXT = {"schema": {"type": "string"}}


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


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value, name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


@router.get(
    "/orgs/{org}/activity",
    response={200: s.EventPage, **E},
    openapi_extra={"responses": {200: {"content": {NDJSON: TEXT, CSV: TEXT}}}},
)
def list_activity(
    request: HttpRequest,
    org: str,
    model: str | None = None,
    version: s.Number | None = None,
    after: str | None = None,
    since: str | None = None,
    until: str | None = None,
    format: Literal["json", "jsonl", "csv"] | None = None,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    """`since` (inclusive) and `until` (exclusive) take ISO 8601 times with their zone.
    `format=jsonl|csv`, or `Accept: text/csv`, downloads an export: a header with the chain
    head, one self-verifying line per event and a trailer (`verify_activity --file`)."""
    user = request.auth
    found = get_org_for_user(user, org)
    if version is not None and model is None:
        raise Invalid("version filters within a model: give model too")
    start, end = _time(since, "since"), _time(until, "until")
    if start and end and start >= end:
        raise Invalid("since must be before until")
    registered = get_model_for_user(user, found, model) if model is not None else None
    chosen = (
        get_version_for_user(user, found, model, version)
        if registered is not None and version is not None
        else None
    )
    accept = request.headers.get("Accept", "")
    if format is None and CSV in accept:
        format = "csv"
    if format in ("jsonl", "csv"):
        if after or cursor:
            raise Invalid("an export takes since and until; after and cursor page the list")
        export = export_for(
            found,
            user=user,
            model=registered,
            version=chosen,
            since=start,
            until=end,
            exported_by=user.get_username(),
        )
        response = StreamingHttpResponse(
            export.render(format), content_type=f"{CONTENT_TYPES[format]}; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{export.filename(format)}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    events = ActivityEvent.objects.filter(org=found)
    if chosen is not None:
        events = events.filter(version_id=chosen.pk)
    elif registered is not None:
        events = events.filter(model_id=registered.pk)
    elif not is_org_admin(user, found):
        # Members see the events of the models they may view; org-wide events (settings,
        # memberships) and those of deleted models are for org admins.
        visible = RegisteredModel.objects.visible_to(user).filter(org=found).values("pk")
        events = events.filter(model_id__in=visible)
    if after:
        events = events.filter(_after(after))
    if start is not None:
        events = events.filter(created_at__gte=start)
    if end is not None:
        events = events.filter(created_at__lt=end)
    if format is None and NDJSON in accept:
        lines = (
            json.dumps(event_json(e), cls=DjangoJSONEncoder) + "\n"
            for e in events.order_by("seq").iterator(chunk_size=500)
        )
        return StreamingHttpResponse(lines, content_type=NDJSON)
    return paginate(events, keys=["seq"], cursor=cursor, limit=limit, render=event_json)
