"""The statements of the notifications that are plain SQL (STYLE.md, "Plain over clever").

Every committed activity event is looked at after its commit, most of them to find nobody to
tell; building these with the ORM (EXISTS subqueries) costs some thirty times their run time.
The dispatch that makes an event's deliveries marks it first, and learns whether it won.
Every e-mail is leased, then marked sent: built by the ORM, the two conditional updates cost
1.3-1.4 ms of a worker's CPU per e-mail, against about 0.15 ms.
tests/notifications/test_dispatch.py and tests/notifications/test_sending_sql.py pin each
to the equivalent queryset.
"""

from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from approvals.models import StageChangeRequest
from registry.models import ActivityEvent, Organization, RegisteredModel
from registry.sql import Shape


class Audience(NamedTuple):
    verb: str
    dispatched: bool  # the event has its notifications.Dispatch marker
    watched: bool  # its model has watchers
    hooked: bool  # an active webhook of its org, or of its model, older than the event
    event: ActivityEvent  # the event itself, for the dispatch that goes on to tell somebody
    model: RegisteredModel | None  # its model as stored now, with its org; None: none, or gone


_EVENT, _MODEL, _ORG = (
    Shape(ActivityEvent, "e"),
    Shape(RegisteredModel, "m"),
    Shape(Organization, "o"),
)
AUDIENCE_SQL = f"""
SELECT e.verb,
       EXISTS (SELECT 1 FROM notifications_dispatch d WHERE d.event_id = e.id),
       EXISTS (SELECT 1 FROM registry_watch w WHERE w.model_id = e.model_id),
       EXISTS (SELECT 1 FROM notifications_webhook h
               WHERE h.org_id = e.org_id AND h.active AND h.created_at <= e.created_at
                 AND (h.model_id IS NULL OR h.model_id = e.model_id)),
       {_EVENT.columns}, {_MODEL.columns}, {_ORG.columns}
FROM registry_activityevent e
LEFT JOIN registry_registeredmodel m ON m.id = e.model_id
LEFT JOIN registry_organization o ON o.id = m.org_id
WHERE e.id = %s
"""


def event_audience(event_id: int) -> Audience | None:
    """Who an event may reach, as far as one indexed read can tell, the event, and its
    model with its org (RegisteredModel.objects.select_related("org"), as the e-mails and
    the recipients' access need it); None if there is no such event."""
    with connection.cursor() as cursor:
        cursor.execute(AUDIENCE_SQL, [event_id])
        row = cursor.fetchone()
    if row is None:
        return None
    verb, dispatched, watched, hooked = row[:4]
    model = _MODEL.make(row, 4 + _EVENT.width)
    if model is not None:
        model.org = _ORG.make(row, 4 + _EVENT.width + _MODEL.width)
    event = _EVENT.make(row, 4)
    return Audience(verb, bool(dispatched), bool(watched), bool(hooked), event, model)


# The marker of an event that nobody can be told of (no watcher of its model, no active
# webhook of its org or model older than it), inserted in the statement that finds it so.
SETTLE_SQL = """
INSERT INTO notifications_dispatch (event_id, dispatched_at, deliveries)
SELECT e.id, %s, 0
FROM registry_activityevent e
WHERE e.id = %s
  AND NOT EXISTS (SELECT 1 FROM registry_watch w WHERE w.model_id = e.model_id)
  AND NOT EXISTS (SELECT 1 FROM notifications_webhook h
                  WHERE h.org_id = e.org_id AND h.active AND h.created_at <= e.created_at
                    AND (h.model_id IS NULL OR h.model_id = e.model_id))
ON CONFLICT DO NOTHING
RETURNING event_id
"""


def event_settle_unheard(event_id: int) -> bool:
    """Mark the event dispatched if nobody watches its model and no webhook could want it;
    True if this call marked it. (The people of a stage change request are not looked at
    here: the caller never settles their verbs.)"""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(SETTLE_SQL, [now, event_id])
        return cursor.fetchone() is not None


# An event's Dispatch marker, made by the one dispatch that makes its deliveries: of two
# racing, the second waits on the first's row (PostgreSQL; SQLite runs one writer at a
# time) and inserts nothing.
MARK_SQL = """
INSERT INTO notifications_dispatch (event_id, dispatched_at, deliveries)
VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING event_id
"""


def event_mark_dispatched(event_id: int, deliveries: int) -> bool:
    """Insert the event's Dispatch marker, counting its `deliveries`; True if this call
    inserted it, False if the event had one."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(MARK_SQL, [event_id, now, deliveries])
        return cursor.fetchone() is not None


# A delivery's lease (notifications/sending.py `claim`): taken only while it is pending and
# nobody holds it, counting the attempt. One of two senders racing for it changes the row.
CLAIM_SQL = """
UPDATE notifications_delivery
SET lease_until = %s, attempts = attempts + 1
WHERE id = %s AND status = 'pending' AND (lease_until IS NULL OR lease_until < %s)
"""


def delivery_claim(delivery_id: int, now, lease_until) -> bool:
    """Lease the delivery until `lease_until` if it is pending and free at `now`; True if
    this call took it."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [adapt(lease_until), delivery_id, adapt(now)])
        return cursor.rowcount == 1


# A delivery sent: marked once, only while it is pending, its lease let go.
SENT_SQL = """
UPDATE notifications_delivery
SET lease_until = NULL, status = 'sent', sent_at = %s, last_error = ''
WHERE id = %s AND status = 'pending'
"""


def delivery_sent(delivery_id: int, now) -> None:
    with connection.cursor() as cursor:
        cursor.execute(SENT_SQL, [connection.ops.adapt_datetimefield_value(now), delivery_id])


# A stage change request with its requester: whom an event about it tells of the decision.
_REQUEST, _REQUESTER = Shape(StageChangeRequest, "q"), Shape(get_user_model(), "u")
REQUEST_SQL = f"""
SELECT {_REQUEST.columns}, {_REQUESTER.columns}
FROM approvals_stagechangerequest q
LEFT JOIN auth_user u ON u.id = q.requester_id
WHERE q.id = %s
"""


def request_with_requester(request_id: int) -> StageChangeRequest | None:
    """The request `request_id` with its requester (None when gone):
    StageChangeRequest.objects.select_related("requester").filter(pk=request_id).first()."""
    with connection.cursor() as cursor:
        cursor.execute(REQUEST_SQL, [request_id])
        row = cursor.fetchone()
    if row is None:
        return None
    request = _REQUEST.make(row, 0)
    request.requester = _REQUESTER.make(row, _REQUEST.width)
    return request


# Of the recipients found for an event, those who opted out of its kind of e-mail; the
# requester of a decision (`decided`) by the kind of the decisions on their requests.
OPTED_OUT_SQL = """
SELECT user_id FROM notifications_notificationpreference
WHERE NOT enabled AND ((kind = %s AND user_id IN ({users})) OR (kind = %s AND user_id = %s))
"""


def opted_out(users: list[int], kind: str, decided: int | None, decided_kind: str) -> set[int]:
    """The ids among `users` who turned off e-mails of `kind`, and `decided` if they turned
    off those of `decided_kind`: NotificationPreference.objects.filter(enabled=False)
    .filter(Q(user_id__in=users, kind=kind) | Q(user_id=decided, kind=decided_kind))."""
    placeholders = ", ".join(["%s"] * len(users)) or "NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            OPTED_OUT_SQL.format(users=placeholders), [kind, *users, decided_kind, decided]
        )
        return {user_id for (user_id,) in cursor.fetchall()}
