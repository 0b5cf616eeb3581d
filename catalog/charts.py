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


def _tick(value: float) -> str:
    return f"{value:.4g}"


def metric_chart(
    values: list[tuple[str, float | None]], *, width: int = 320, height: int = 180
) -> dict:
    """Bars for one metric across versions, on a scale from min(0, lowest) to max(0,
    highest), with an axis whose ticks (bottom, middle, top) carry the scale, and each bar
    its value. A version without the metric has no bar, and says so."""
    left, top_pad, bottom_pad = 44, 16, 22
    present = [v for _, v in values if v is not None]
    high = max(present + [0.0])
    low = min(present + [0.0])
    if high == low:
        high = low + 1.0
    plot = height - top_pad - bottom_pad

    def y_of(value: float) -> float:
        return top_pad + plot * (high - value) / (high - low)

    zero = y_of(0.0)
    slot = (width - left) / max(len(values), 1)
    bars = []
    for index, (label, value) in enumerate(values):
        x = left + index * slot + slot * 0.15
        center = x + slot * 0.35
        if value is None:
            bars.append(
                {
                    "label": label,
                    "value": None,
                    "x": x,
                    "series": index,
                    "missing": True,
                    "center": center,
                    "y": zero,
                    "height": 0.0,
                    "width": slot * 0.7,
                    "text_y": zero - 4,
                }
            )
            continue
        y = min(y_of(value), zero)
        bar_height = abs(zero - y_of(value))
        bars.append(
            {
                "label": label,
                "value": value,
                "shown": _tick(value),
                "x": x,
                "y": y,
                "width": slot * 0.7,
                "height": bar_height,
                # Above a bar that rises, below one that falls.
                "text_y": y - 4 if value >= 0 else y + bar_height + 11,
                "series": index,
                "missing": False,
                "center": center,
            }
        )
    ticks = [{"y": y_of(v), "label": _tick(v)} for v in (low, (low + high) / 2, high)]
    return {
        "bars": bars,
        "ticks": ticks,
        "zero": zero,
        "left": left,
        "width": width,
        "height": height,
        "label_y": height - 6,
    }
