"""Compare two to five versions of a model side by side (SPEC 4.1)."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.charts import metric_chart
from catalog.errors import domain_errors
from catalog.views.flags import open_flag_count
from registry.compare import MAX_VERSIONS, MIN_VERSIONS, SECTIONS, diff_rows, metric_series
from registry.models import ModelVersion
from registry.permissions import get_model_for_user


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, indent=1)
    return str(value)


def _rows(sources: list) -> list[dict]:
    """registry.compare's rows, their values as the page shows them."""
    return [{**row, "values": [_shown(v) for v in row["values"]]} for row in diff_rows(sources)]


def _charts(versions: list[ModelVersion]) -> list[dict]:
    """One chart per numeric metric, each on its own scale (an AUC and a loss in the
    thousands side by side would flatten one of them)."""
    return [
        {
            "name": series["name"],
            **metric_chart(
                [
                    (f"v{v.number}", value)
                    for v, value in zip(versions, series["values"], strict=True)
                ]
            ),
        }
        for series in metric_series(versions)
    ]


def _chosen(request: HttpRequest, numbers: list[int]) -> tuple[list[int], str]:
    """The version numbers asked for (`v`, repeated; or the older `a` and `b`), distinct, in
    the order given; by default the latest two. A message when the count is off."""
    raw = request.GET.getlist("v") or [
        request.GET.get(k, "") for k in ("a", "b") if k in request.GET
    ]
    asked = list(dict.fromkeys(int(n) for n in raw if n.isdigit()))
    if not raw:
        return sorted(numbers[:MIN_VERSIONS]), ""
    if len(asked) > MAX_VERSIONS:
        return asked[:MAX_VERSIONS], f"At most {MAX_VERSIONS} versions: the first five are shown."
    if len(asked) < MIN_VERSIONS:
        return asked, f"Choose {MIN_VERSIONS} to {MAX_VERSIONS} different versions."
    return asked, ""


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
    chosen, problem = _chosen(request, numbers)
    found = {
        v.number: v
        for v in ModelVersion.objects.filter(model=registered, number__in=chosen).annotate(
            open_flags=open_flag_count("version")
        )
    }
    versions = [found[n] for n in chosen if n in found]
    if not problem and len(versions) < len(chosen):
        problem = "Some of those versions do not exist."
    sections, charts = [], []
    if len(versions) >= MIN_VERSIONS:
        sections = [
            {
                "name": name.replace("_", " ").capitalize(),
                "rows": _rows([getattr(v, name) for v in versions]),
            }
            for name in SECTIONS
        ]
        charts = _charts(versions)
    context = {
        "model": registered,
        "numbers": numbers,
        "versions": versions,
        "chosen": set(chosen),
        "problem": problem,
        "sections": sections,
        "charts": charts,
        "max_versions": MAX_VERSIONS,
    }
    return render(request, "catalog/compare.html", context)
