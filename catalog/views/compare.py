"""Compare two versions of a model side by side (SPEC 4.1)."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.charts import numeric
from catalog.errors import domain_errors
from registry.models import ModelVersion
from registry.permissions import get_model_for_user

SECTIONS = ("params", "metrics", "environment", "input_schema", "output_schema")


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, indent=1)
    return str(value)


def _rows(a: dict | None, b: dict | None) -> list[dict]:
    a, b = a or {}, b or {}
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [{"key": "", "a": _shown(a), "b": _shown(b), "differs": a != b}]
    return [
        {
            "key": key,
            "a": _shown(a.get(key)),
            "b": _shown(b.get(key)),
            "differs": a.get(key) != b.get(key),
        }
        for key in sorted(set(a) | set(b))
    ]


def _metric_bars(a: dict, b: dict, *, width: int = 480, height: int = 180) -> list[dict]:
    names = sorted(
        k for k in set(a) | set(b) if numeric(a.get(k)) is not None or numeric(b.get(k)) is not None
    )
    values = [abs(numeric(v.get(k)) or 0) for k in names for v in (a, b)]
    top = max(values + [1e-12])
    slot = width / max(len(names), 1)
    bars = []
    for index, name in enumerate(names):
        for offset, (series, source) in enumerate((("a", a), ("b", b))):
            value = numeric(source.get(name)) or 0.0
            bar_height = (height - 40) * abs(value) / top
            bars.append(
                {
                    "series": series,
                    "label": name,
                    "value": value,
                    "x": index * slot + slot * 0.1 + offset * slot * 0.4,
                    "y": height - 24 - bar_height,
                    "width": slot * 0.38,
                    "height": bar_height,
                    "label_x": index * slot + slot * 0.1,
                    "first": offset == 0,
                }
            )
    return bars


@login_required
@require_GET
@domain_errors
def compare_versions(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    numbers = list(
        ModelVersion.objects.filter(model=registered)
        .order_by("-number")
        .values_list("number", flat=True)[:200]
    )
    chosen = []
    for key, fallback in (("a", 1), ("b", 0)):
        raw = request.GET.get(key, "")
        number = (
            int(raw) if raw.isdigit() else (numbers[fallback] if len(numbers) > fallback else None)
        )
        chosen.append(number)
    found = {
        v.number: v
        for v in ModelVersion.objects.filter(model=registered, number__in=[n for n in chosen if n])
    }
    a, b = found.get(chosen[0]), found.get(chosen[1])
    sections = []
    if a is not None and b is not None:
        sections = [
            {
                "name": name.replace("_", " ").capitalize(),
                "rows": _rows(getattr(a, name), getattr(b, name)),
            }
            for name in SECTIONS
        ]
    context = {
        "model": registered,
        "numbers": numbers,
        "a": a,
        "b": b,
        "sections": sections,
        "bars": _metric_bars(a.metrics, b.metrics) if a and b else [],
    }
    return render(request, "catalog/compare.html", context)
