"""Tags of the two includes the model card uses. Each reads what the page's view already put
in the context (`watching`, `access`) and queries only when it is absent."""

from django import template

from registry.models import Watch
from registry.permissions import Access, model_access

register = template.Library()


@register.simple_tag(takes_context=True)
def is_watching(context, model, user) -> bool:
    if "watching" in context:
        return bool(context["watching"])
    if not getattr(user, "is_authenticated", False):
        return False
    return Watch.objects.filter(model=model, user=user).exists()


@register.simple_tag(takes_context=True)
def can_write(context, model, user) -> bool:
    access = context.get("access")
    if isinstance(access, Access):
        return access.write
    return model_access(user, model).write


@register.simple_tag
def webhook_events() -> list[str]:
    from notifications.models import WEBHOOK_EVENTS

    return WEBHOOK_EVENTS
