"""Comparing 2-5 versions of a model and a metric's trend across its versions (SPEC 4.1's
compare page and model card chart) as JSON. registry.compare computes both, for the UI too."""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Query, Router
from pydantic import Field

from api import schemas as s
from registry.compare import (
    MAX_TREND_VERSIONS,
    SECTIONS,
    TREND_VERSIONS,
    compare_sections,
    metric_series,
    metric_trend,
    versions_to_compare,
)
from registry.errors import Invalid
from registry.permissions import get_model_for_user

router = Router(tags=["models"])
E = s.ERRORS
MODEL = "/orgs/{org}/models/{model}"
Last = Annotated[int, Field(ge=1, le=MAX_TREND_VERSIONS)]


class ComparedVersion(s.Schema):
    number: int
    label: str | None
    branch: str
    stage: str
    lock_level: str
    digest: str


class DiffRow(s.Schema):
    key: str
    values: list[Any]  # one per compared version, in their order; null where it has none
    differs: bool


class MetricSeries(s.Schema):
    name: str
    values: list[float | None]


class CompareOut(s.Schema):
    model: str
    versions: list[ComparedVersion]
    sections: dict[str, list[DiffRow]]  # params, metrics, environment, input/output_schema
    metrics: list[MetricSeries]  # the numeric metrics, for a chart


class TrendPoint(s.Schema):
    version: int
    value: float


class TrendOut(s.Schema):
    model: str
    metric: str | None
    metrics: list[str]  # the numeric metrics of the versions covered
    points: list[TrendPoint]


class CompareQuery(s.Schema):
    v: list[s.Number] | None = None


@router.get(MODEL + "/compare", response={200: CompareOut, **E})
def compare_versions(request: HttpRequest, org: str, model: str, query: Query[CompareQuery]):
    """`?v=1&v=3`: 2 to 5 distinct versions, side by side in the order given; without `v`,
    the latest two (as the compare page opens)."""
    found = get_model_for_user(request.auth, org, model)
    versions = versions_to_compare(found, query.v)
    sections = compare_sections(versions)
    return {
        "model": found.name,
        "versions": [
            {
                "number": v.number,
                "label": v.label,
                "branch": v.branch.name,
                "stage": v.stage,
                "lock_level": v.lock_level,
                "digest": v.digest,
            }
            for v in versions
        ],
        "sections": {name: sections[name] for name in SECTIONS},
        "metrics": metric_series(versions),
    }


@router.get(MODEL + "/trend", response={200: TrendOut, **E})
def trend(
    request: HttpRequest,
    org: str,
    model: str,
    metric: str | None = None,
    last: Last = TREND_VERSIONS,
):
    """A numeric metric across the latest `last` versions (default 30), oldest first; without
    `metric`, the first of `metrics` by name."""
    found = get_model_for_user(request.auth, org, model)
    computed = metric_trend(found, metric, last=last)
    if metric is not None and metric not in computed["metrics"]:
        known = ", ".join(computed["metrics"]) or "none"
        raise Invalid(
            f"no version among the latest {last} of {found.name} has a numeric metric "
            f"{metric!r}; they have: {known}",
            details={"metrics": computed["metrics"]},
        )
    return {
        "model": found.name,
        "metric": computed["metric"] or None,
        "metrics": computed["metrics"],
        "points": [{"version": n, "value": value} for n, value in computed["points"]],
    }
