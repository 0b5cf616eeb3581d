"""Numbers for server-rendered SVG charts: no JavaScript, the template draws the shapes."""

from dataclasses import dataclass

from registry.models import Stage


@dataclass(frozen=True)
class Bar:
    label: str
    key: str
    value: float
    x: float
    y: float
    width: float
    height: float


def stage_bars(counts: dict[str, int], *, width: int = 400, height: int = 160) -> list[Bar]:
    """One bar per stage, in the order of the flow, scaled to the tallest."""
    stages = list(Stage)
    top = max([counts.get(s, 0) for s in stages] + [1])
    slot = width / len(stages)
    bars = []
    for index, stage in enumerate(stages):
        value = counts.get(stage, 0)
        bar_height = (height - 36) * value / top
        bars.append(
            Bar(
                label=stage.label,
                key=stage.value,
                value=value,
                x=index * slot + slot * 0.15,
                y=height - 20 - bar_height,
                width=slot * 0.7,
                height=bar_height,
            )
        )
    return bars


def value_bars(
    values: list[tuple[str, float]], *, width: int = 400, height: int = 160
) -> list[Bar]:
    """Bars for named numbers (a metric across versions, or across two versions)."""
    if not values:
        return []
    top = max([abs(v) for _, v in values] + [1e-12])
    slot = width / len(values)
    bars = []
    for index, (label, value) in enumerate(values):
        bar_height = (height - 36) * abs(value) / top
        bars.append(
            Bar(
                label=label,
                key=label,
                value=value,
                x=index * slot + slot * 0.1,
                y=height - 20 - bar_height,
                width=slot * 0.8,
                height=bar_height,
            )
        )
    return bars


def numeric(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
