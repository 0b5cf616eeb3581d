"""What comparing versions and following a metric compute (SPEC 4.1), for every surface: the
UI's compare page and model card draw it, the API answers it as JSON.

Reads only: the caller fetches the model with authorisation first.
"""

import json
from typing import Any

from registry.errors import Invalid, NotFound
from registry.models import ModelVersion, RegisteredModel

SECTIONS = ("params", "metrics", "environment", "input_schema", "output_schema")
MIN_VERSIONS, MAX_VERSIONS = 2, 5
TREND_VERSIONS, MAX_TREND_VERSIONS = 30, 200


def numeric(value: Any) -> float | None:
    """A metric's value as a number for a chart; None for text, booleans and the rest."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def diff_rows(sources: list[Any]) -> list[dict[str, Any]]:
    """One row per key of any of the versions' dicts (`values` in the versions' order, None
    where a version lacks the key); a row differs when its values do. Sources that are not
    all dicts (a schema given as a list) compare whole, as one row keyed ""."""
    sources = [source or {} for source in sources]
    if not all(isinstance(source, dict) for source in sources):
        canonical = {_canonical(source) for source in sources}
        return [{"key": "", "values": sources, "differs": len(canonical) > 1}]
    keys = sorted({key for source in sources for key in source})
    rows = []
    for key in keys:
        raw = [source.get(key) for source in sources]
        canonical = {_canonical(value) for value in raw}
        rows.append({"key": key, "values": raw, "differs": len(canonical) > 1})
    return rows


def compare_sections(versions: list[ModelVersion]) -> dict[str, list[dict[str, Any]]]:
    """diff_rows of each section (params, metrics, environment, schemas) of `versions`."""
    return {name: diff_rows([getattr(v, name) for v in versions]) for name in SECTIONS}


def metric_series(versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """One series per numeric metric of any of `versions`, by name: the value of each
    version in order, None where it has none (or not a number)."""
    names = sorted(
        {name for v in versions for name, value in v.metrics.items() if numeric(value) is not None}
    )
    return [
        {"name": name, "values": [numeric(v.metrics.get(name)) for v in versions]} for name in names
    ]


def chosen_numbers(numbers: list[int]) -> list[int]:
    """The version numbers to compare, distinct, in the order given: 2 to 5 of them, else
    Invalid saying so."""
    chosen = list(dict.fromkeys(numbers))
    if not MIN_VERSIONS <= len(chosen) <= MAX_VERSIONS:
        raise Invalid(
            f"compare {MIN_VERSIONS} to {MAX_VERSIONS} different versions, not {len(chosen)}"
        )
    return chosen


def versions_to_compare(model: RegisteredModel, numbers: list[int] | None) -> list[ModelVersion]:
    """The versions `numbers` of `model` in that order (chosen_numbers' rules), in one query;
    NotFound naming the first that does not exist. None: the latest two, oldest first, as
    the compare page opens (fewer when the model has fewer)."""
    if numbers is None:
        latest = ModelVersion.objects.filter(model=model).order_by("-number")[:MIN_VERSIONS]
        return sorted(latest.select_related("branch"), key=lambda v: v.number)
    chosen = chosen_numbers(numbers)
    versions = ModelVersion.objects.filter(model=model, number__in=chosen).select_related("branch")
    found = {v.number: v for v in versions}
    for number in chosen:
        if number not in found:
            raise NotFound(f"version {number} of model {model.name} not found")
    return [found[n] for n in chosen]


def metric_trend(
    model: RegisteredModel, metric: str | None = None, *, last: int = TREND_VERSIONS
) -> dict[str, Any]:
    """A metric across the latest `last` versions of `model`, oldest first, in one query:
    `metrics` (the numeric metric names of those versions), `metric` (the one asked, or the
    first name) and `points` ([(number, value)] of the versions that have it as a number)."""
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_TREND_VERSIONS:
        raise Invalid(f"the trend covers 1 to {MAX_TREND_VERSIONS} versions")
    recent = list(
        ModelVersion.objects.filter(model=model)
        .order_by("-number")
        .values("number", "metrics")[:last]
    )
    names = sorted({k for v in recent for k, m in v["metrics"].items() if numeric(m) is not None})
    chosen = metric or (names[0] if names else "")
    points = [
        (v["number"], numeric(v["metrics"].get(chosen)))
        for v in reversed(recent)
        if numeric(v["metrics"].get(chosen)) is not None
    ]
    return {"metrics": names, "metric": chosen, "points": points}
