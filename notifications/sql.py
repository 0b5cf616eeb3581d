"""The two statements of the notifications that are plain SQL (STYLE.md, "Plain over clever").

Every committed activity event is looked at after its commit, most of them to find nobody to
tell; building these with the ORM (EXISTS subqueries) costs some thirty times their run time.
tests/notifications/test_dispatch.py pins each to the equivalent queryset.
"""

from typing import NamedTuple

from django.db import connection
from django.utils import timezone


class Audience(NamedTuple):
    verb: str
    dispatched: bool  # the event has its notifications.Dispatch marker
    watched: bool  # its model has watchers
    hooked: bool  # an active webhook of its org, or of its model, older than the event


AUDIENCE_SQL = """
SELECT e.verb,
       EXISTS (SELECT 1 FROM notifications_dispatch d WHERE d.event_id = e.id),
       EXISTS (SELECT 1 FROM registry_watch w WHERE w.model_id = e.model_id),
       EXISTS (SELECT 1 FROM notifications_webhook h
               WHERE h.org_id = e.org_id AND h.active AND h.created_at <= e.created_at
                 AND (h.model_id IS NULL OR h.model_id = e.model_id))
FROM registry_activityevent e
WHERE e.id = %s
"""


def event_audience(event_id: int) -> Audience | None:
    """Who an event may reach, as far as one indexed read can tell; None if there is no
    such event."""
    with connection.cursor() as cursor:
        cursor.execute(AUDIENCE_SQL, [event_id])
        row = cursor.fetchone()
    if row is None:
        return None
    verb, dispatched, watched, hooked = row
    return Audience(verb, bool(dispatched), bool(watched), bool(hooked))


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
