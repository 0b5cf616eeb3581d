"""E-mail for a delivery: text and HTML parts, links through SITE_URL, user text escaped by
the template engine (HTML part), and a subject that can carry no header of its own. What the
e-mails of one event share is made once (`event_mail`), each recipient's from it."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from registry.models import ActivityEvent, ModelVersion

SUBJECT_MAX = 150

HEADLINES = {
    "version.created": "New version {number} of {model}",
    "stage.requested": "Review requested: {model} v{number} to {to_stage}",
    "stage.approved": "Your request for {model} v{number} was approved",
    "stage.rejected": "Your request for {model} v{number} was rejected",
    "stage.applied": "{model} v{number} moved to {stage}",
    "stage.cancelled": "Request cancelled: {model} v{number} to {to_stage}, no review needed",
    "lock.raised": "{model} v{number} lock raised to {level}",
    "lock.lowered": "{model} v{number} lock lowered to {level}",
    "flag.raised": "{model} v{number} was flagged",
}


def clean_subject(text: str) -> str:
    """One line (CR, LF and other line breaks become spaces), at most SUBJECT_MAX characters."""
    line = " ".join(text.splitlines())
    line = "".join(ch if ch.isprintable() else " " for ch in line)
    line = " ".join(line.split())
    if len(line) > SUBJECT_MAX:
        line = line[: SUBJECT_MAX - 1].rstrip() + "…"
    return line


def _reverse_first(candidates: list[tuple[str, dict]]) -> str | None:
    for name, kwargs in candidates:
        try:
            return reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def event_number(event: ActivityEvent):
    number = (event.data or {}).get("number")
    if number is None:
        number = ((event.changes or {}).get("number") or [None, None])[-1]
    if number is None and event.version_id is not None:
        # Older events of a version (a lock change before its number was recorded).
        number = (
            ModelVersion.objects.filter(pk=event.version_id)
            .values_list("number", flat=True)
            .first()
        )
    return number


def event_link(event: ActivityEvent, org_slug: str, model_name: str | None) -> str:
    """An absolute link to the page the event concerns (the UI's URL names where present)."""
    number = event_number(event)
    path = None
    if model_name and number is not None:
        path = _reverse_first(
            [
                (name, {"org": org_slug, "model": model_name, "number": number})
                for name in ("catalog:version-detail", "catalog:version")
            ]
        )
    if path is None and model_name:
        path = _reverse_first(
            [
                (name, {"org": org_slug, "model": model_name})
                for name in ("catalog:model-detail", "catalog:model")
            ]
        )
    if path is None:
        path = _reverse_first([("catalog:home", {})]) or "/"
    return f"{settings.SITE_URL}{path}"


def event_context(event: ActivityEvent, model_name: str | None) -> dict:
    changes = event.changes or {}
    data = event.data or {}
    facts = {
        "model": model_name or event.target_repr,
        "number": event_number(event) or "",
        "to_stage": data.get("to_stage", ""),
        "stage": (changes.get("stage") or ["", ""])[-1],
        "level": (changes.get("lock_level") or changes.get("level") or ["", ""])[-1],
    }
    template = HEADLINES.get(event.verb, "{model}: " + event.verb)
    headline = template.format(**facts)
    return {
        "event": event,
        "headline": headline,
        "actor": event.actor_name or "someone",
        "comment": data.get("comment") or data.get("summary") or "",
        "changes": [(field, pair) for field, pair in sorted(changes.items())],
        "facts": facts,
    }


def event_mail(*, event: ActivityEvent, org_slug: str, model_name: str | None) -> dict:
    """What every recipient's e-mail about `event` shares (headline, subject, links): made
    once per event, whatever the number of recipients."""
    context = event_context(event, model_name)
    context.update(
        link=event_link(event, org_slug, model_name),
        preferences_link=f"{settings.SITE_URL}{reverse('notifications:preferences')}",
        subject=clean_subject(f"[Modelvault] {context['headline']}"),
    )
    return context


def message_for(mail: dict, user) -> EmailMultiAlternatives:
    """One recipient's e-mail from `event_mail`'s context (the body greets the user)."""
    context = {**mail, "user": user}
    text = render_to_string("notifications/email/notification.txt", context)
    html = render_to_string("notifications/email/notification.html", context)
    message = EmailMultiAlternatives(
        subject=mail["subject"],
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers={"X-Modelvault-Event": mail["event"].verb},
    )
    message.attach_alternative(html, "text/html")
    return message
