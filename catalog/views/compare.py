"""Compare two to five versions of a model side by side (SPEC 4.1)."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.charts import metric_chart, numeric
from catalog.errors import domain_errors
from catalog.views.flags import open_flag_count
from registry.models import ModelVersion
from registry.permissions import get_model_for_user

SECTIONS = ("params", "metrics", "environment", "input_schema", "output_schema")
MIN_VERSIONS, MAX_VERSIONS = 2, 5


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, indent=1)
    return str(value)


def _rows(sources: list) -> list[dict]:
    """One row per key of any of the versions' dicts; a row differs when its values do."""
    sources = [source or {} for source in sources]
    if not all(isinstance(source, dict) for source in sources):
        values = [_shown(source) for source in sources]
        return [{"key": "", "values": values, "differs": len(set(values)) > 1}]
    keys = sorted({key for source in sources for key in source})
    rows = []
    for key in keys:
        raw = [source.get(key) for source in sources]
        canonical = {json.dumps(value, sort_keys=True) for value in raw}
        rows.append({"key": key, "values": [_shown(v) for v in raw], "differs": len(canonical) > 1})
    return rows


def _charts(versions: list[ModelVersion]) -> list[dict]:
    """One chart per numeric metric, each on its own scale (an AUC and a loss in the
    thousands side by side would flatten one of them)."""
    names = sorted(
        {name for v in versions for name, value in v.metrics.items() if numeric(value) is not None}
    )
    return [
        {
            "name": name,
            **metric_chart([(f"v{v.number}", numeric(v.metrics.get(name))) for v in versions]),
        }
        for name in names
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
