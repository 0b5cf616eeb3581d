"""Presentation helpers: sanitised Markdown, sizes, stage and lock badges."""

import markdown as markdown_lib
import nh3
from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from registry.models import LockLevel, Stage

register = template.Library()

_STAGE_LABELS = dict(Stage.choices)
_LOCK_LABELS = dict(LockLevel.choices)


@register.filter
def markdown(text: str | None) -> SafeString:
    """The one place Markdown becomes HTML: rendered, then sanitised with nh3 (no scripts,
    no event handlers, no javascript: links)."""
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables"])
    return mark_safe(nh3.clean(html))


@register.filter
def filesize(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@register.simple_tag
def stage_badge(stage: str) -> SafeString:
    return format_html(
        '<span class="badge stage stage-{}">{}</span>', stage, _STAGE_LABELS.get(stage, stage)
    )


@register.simple_tag
def lock_badge(level: str) -> SafeString:
    return format_html(
        '<span class="badge lock lock-{}" title="Lock level">lock: {}</span>',
        level,
        _LOCK_LABELS.get(level, level),
    )


@register.filter
def get_item(mapping: dict, key: str):
    return (mapping or {}).get(key)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (for pagination and tabs)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
