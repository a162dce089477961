"""Chart geometry for the HTML report: plain dicts the template draws as inline SVG (no script)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from invrecon.pipelines.report.common import CLASS_COLORS
from invrecon.pipelines.report.data import ReportData

__all__ = ["bar_chart", "charts", "column_chart", "ira_floor", "line_chart"]

# Lower bounds of the accuracy axis: four equal steps from each to 100% are round percentages.
IRA_AXIS_FLOORS = (0.96, 0.92, 0.8, 0.6, 0.2, 0.0)
# The parts of a value-trend column, bottom up, and their colours.
TREND_PARTS = {"carried over": "#5d6d7e", "new": "#e67e22"}


def _nice_max(value: float) -> float:
    """A round axis maximum >= value (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def ira_floor(values: Sequence[float | None]) -> float:
    """The accuracy axis' lower bound: the highest of IRA_AXIS_FLOORS below every value.

    Example:
      >>> ira_floor([0.973, 0.99]), ira_floor([0.5]), ira_floor([None])
      (0.96, 0.2, 0.96)
    """
    low = min([v for v in values if v is not None], default=1.0)
    return next(f for f in IRA_AXIS_FLOORS if f <= low - 0.005 or f == 0.0)


def bar_chart(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], *, width: int = 760, bar: int = 22, gap: int = 10, label_width: int = 120, value_format: str = "{:,.0f}", integer: bool = False) -> dict:
    """Geometry of a horizontal stacked bar chart (one bar per row, one segment per part).

    Args:
      rows: (label, [(part, value), ...]) per bar; values >= 0.
      integer: the values are counts (the axis gets whole-number ticks).

    Returns:
      {"width", "height", "bars": [{"label", "y", "total_label", "segments": [{x, w, part}]}], "ticks"}

    Example:
      >>> g = bar_chart([("DC01", [("qty_mismatch", 50.0), ("timing", 50.0)])], width=320, label_width=120)
      >>> [(s["x"], s["w"]) for s in g["bars"][0]["segments"]]
      [(120.0, 70.0), (190.0, 70.0)]
    """
    plot = width - label_width - 60
    top = max((sum(v for _, v in parts) for _, parts in rows), default=0.0)
    scale_max = _nice_max(top)
    if integer:  # counts: whole-number ticks
        scale_max = 4 * math.ceil(scale_max / 4)
    bars = []
    for i, (label, parts) in enumerate(rows):
        x = float(label_width)
        segments = []
        for part, value in parts:
            w = round(plot * value / scale_max, 2)
            if w > 0:
                segments.append({"x": round(x, 2), "w": w, "part": part, "value": value_format.format(value)})
                x += w
        total = sum(v for _, v in parts)
        bars.append({"label": label, "y": 20 + i * (bar + gap), "h": bar, "end": round(x, 2), "total_label": value_format.format(total), "segments": segments})
    height = 20 + len(rows) * (bar + gap) + 24
    ticks = [{"x": round(label_width + plot * k / 4, 2), "label": _tick(scale_max * k / 4)} for k in range(5)]
    return {"width": width, "height": height, "bars": bars, "ticks": ticks, "axis_y": height - 20, "label_x": label_width - 8}


def column_chart(labels: Sequence[str], parts: Sequence[Sequence[tuple[str, float]]], *, width: int = 560, height: int = 220, value_format: str = "{:,.0f}") -> dict:
    """Geometry of a vertical stacked column chart over categorical x labels (a time series).

    Args:
      labels: one per column (run dates).
      parts: per column, [(part, value), ...] stacked bottom up; values >= 0.

    Returns:
      {"width", "height", "columns": [{"x", "w", "label", "total_label", "top", "segments": [{y, h, part, value}]}], "xticks", "yticks"}

    Example:
      >>> g = column_chart(["d1", "d2"], [[("a", 50.0)], [("a", 50.0), ("b", 50.0)]], width=200, height=136)
      >>> [[(s["y"], s["h"]) for s in c["segments"]] for c in g["columns"]]
      [[(62.0, 38.0)], [(62.0, 38.0), (24.0, 38.0)]]
    """
    left, right, top, bottom = 64, 16, 24, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    scale_max = _nice_max(max((sum(v for _, v in p) for p in parts), default=0.0))
    slot = plot_w / max(len(labels), 1)
    col_w = round(min(40.0, slot * 0.7), 2)
    columns = []
    for i, (label, stack) in enumerate(zip(labels, parts)):
        x, base, segments = round(left + slot * i + (slot - col_w) / 2, 2), float(top + plot_h), []
        for part, value in stack:
            h = round(plot_h * value / scale_max, 2)
            if h > 0:
                base -= h
                segments.append({"y": round(base, 2), "h": h, "part": part, "value": value_format.format(value)})
        columns.append({"x": x, "w": col_w, "cx": round(x + col_w / 2, 2), "label": label, "top": round(base, 2),
                        "total_label": value_format.format(sum(v for _, v in stack)), "segments": segments})
    step = max(1, math.ceil(len(labels) / 6))
    xticks = [{"x": c["cx"], "label": c["label"]} for c in columns[::step]]
    yticks = [{"y": round(top + plot_h * (1 - k / 4), 2), "label": _tick(scale_max * k / 4)} for k in range(5)]
    return {"width": width, "height": height, "columns": columns, "xticks": xticks, "yticks": yticks,
            "left": left, "right": width - right, "bottom": top + plot_h, "labels": len(labels) <= 8}


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, width: int = 760, height: int = 220, lo: float = 0.0, hi: float = 1.0) -> dict:
    """Geometry of a line chart over categorical x labels with values in [lo, hi] (shares, as %).

    Returns:
      {"width", "height", "series": [{"name", "points": "x,y x,y", "dots": [{x, y, label}]}], "xticks", "yticks"}
    """
    left, right, top, bottom = 48, 44, 12, 36  # room for a centred date label at either end
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(labels)

    def x_at(i: int) -> float:
        return round(left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1)), 2)

    def y_at(v: float) -> float:
        return round(top + plot_h * (1 - (min(max(v, lo), hi) - lo) / (hi - lo)), 2)

    out = []
    for name, values in series:
        dots = [{"x": x_at(i), "y": y_at(v), "label": f"{labels[i]}: {v:.1%}"} for i, v in enumerate(values) if v is not None]
        out.append({"name": name, "points": " ".join(f"{d['x']},{d['y']}" for d in dots), "dots": dots})
    step = max(1, math.ceil(n / 8))
    xticks = [{"x": x_at(i), "label": labels[i]} for i in range(0, n, step)]
    yticks = [{"y": y_at(lo + (hi - lo) * k / 4), "label": f"{lo + (hi - lo) * k / 4:.0%}"} for k in range(5)]
    return {"width": width, "height": height, "series": out, "xticks": xticks, "yticks": yticks, "left": left, "right": width - right, "bottom": height - bottom}


def value_trend_chart(data: ReportData) -> dict:
    """Gross value at stake per run date in the run's main currency, carried over below new."""
    sums: dict[str, list[float]] = {}
    for r in data.value_trend:
        if r["currency"] in (data.currency, None):
            pair = sums.setdefault(str(r["run_date"]), [0.0, 0.0])
            pair[0] += r["carried_gross_value"]
            pair[1] += r["new_gross_value"]
    return column_chart(list(sums), [[("carried over", c), ("new", n)] for c, n in sums.values()])


def charts(data: ReportData) -> dict:
    """Every chart of the report: value by location, aging, accuracy trend, value trend."""
    locs: dict[str, dict[str, float]] = {}
    for r in data.by_location_class:
        if r["class"] != "oversell_risk" and r["gross_value"]:
            locs.setdefault(r["location"], {}).setdefault(r["class"], 0.0)
            locs[r["location"]][r["class"]] += r["gross_value"]
    order = sorted(locs, key=lambda k: (-sum(locs[k].values()), k))
    classes = [c for c in CLASS_COLORS if any(c in locs[k] for k in order)]
    value_bars = bar_chart([(loc, [(c, locs[loc].get(c, 0.0)) for c in classes]) for loc in order])
    aging_bars = bar_chart(
        [(f"{r['age_bucket']} days", [("open discrepancies", float(r["rows"]))]) for r in data.aging],
        width=560, label_width=90, bar=18, integer=True,
    )
    trend = data.ira_trend
    ira = line_chart(
        [str(r["snapshot_date"]) for r in trend],
        [("strict", [r["ira_strict"] for r in trend]), ("within tolerance", [r["ira_tolerance"] for r in trend])],
        width=560, lo=ira_floor([v for r in trend for v in (r["ira_strict"], r["ira_tolerance"])]),
    )
    return {"value": value_bars, "value_classes": classes, "aging": aging_bars, "ira": ira, "value_trend": value_trend_chart(data),
            "trend_parts": TREND_PARTS}
