"""What was in each stage, and where each alias pointed, at a past time (SPEC 3.7).

Derived only from the activity log, which is append-only and hash-chained, so the answer
cannot drift from what was recorded: `version.created` puts a version in `unassigned`,
`stage.applied` moves it, `version.deleted` removes it (and any alias on it), and
`alias.set|moved|removed` point or drop an alias.
"""

from datetime import datetime
from typing import Any

from django.utils import timezone

from registry.errors import Invalid
from registry.models import ActivityEvent, RegisteredModel, Stage

STATE_VERBS = (
    "version.created",
    "version.deleted",
    "stage.applied",
    "alias.set",
    "alias.moved",
    "alias.removed",
)


def model_state_at(model: RegisteredModel, when: datetime) -> dict[str, dict[Any, Any]]:
    """{"versions": {number: stage}, "aliases": {name: number}} as they stood at `when`
    (events at exactly `when` included). The caller authorises the read."""
    if not isinstance(when, datetime) or timezone.is_naive(when):
        raise Invalid("give the time with its time zone, e.g. 2026-03-01T12:00:00Z")
    numbers: dict[str, int] = {}
    stages: dict[str, str] = {}
    aliases: dict[str, str] = {}
    events = (
        ActivityEvent.objects.filter(model_id=model.pk, created_at__lte=when, verb__in=STATE_VERBS)
        .order_by("seq")
        .values_list("verb", "version_id", "changes", "data")
    )
    for verb, version_id, changes, data in events.iterator():
        version = str(version_id)
        if verb == "version.created":
            numbers[version] = changes["number"][1]
            stages[version] = Stage.UNASSIGNED
        elif verb == "version.deleted":
            numbers.pop(version, None)
            stages.pop(version, None)
            aliases = {name: target for name, target in aliases.items() if target != version}
        elif verb == "stage.applied" and version in stages:
            stages[version] = changes["stage"][1]
        elif verb in ("alias.set", "alias.moved"):
            aliases[data["alias"]] = version
        elif verb == "alias.removed":
            aliases.pop(data["alias"], None)
    return {
        "versions": {numbers[v]: str(stages[v]) for v in sorted(numbers, key=numbers.get)},
        "aliases": {name: numbers[v] for name, v in sorted(aliases.items()) if v in numbers},
    }
