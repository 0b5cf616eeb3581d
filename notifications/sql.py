"""The one statement of the notifications that is plain SQL (STYLE.md, "Plain over clever").

Every committed activity event is dispatched by a worker, most of them to nobody; building
this read with the ORM (three EXISTS subqueries) costs some thirty times its run time.
tests/notifications/test_dispatch.py pins it to the equivalent queryset.
"""

from typing import NamedTuple

from django.db import connection


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
