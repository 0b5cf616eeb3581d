"""Values of the technical documentation as the page shows them: the same display rule as
its Markdown download (compliance.display)."""

import json
from typing import Any

from django import template

from compliance import display

register = template.Library()


@register.filter
def doc_value(value: Any) -> str:
    return display(value)


@register.filter
def doc_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


@register.filter
def doc_pairs(mapping: dict | None) -> list[tuple[str, Any]]:
    """A mapping's pairs: `mapping.items` in a template would look up a key named items."""
    return list((mapping or {}).items())
