"""The finance discrepancy report: `invrecon report --config CFG --run-date D`.

Reads the DuckDB warehouse a batch run loaded (`<output>/warehouse.duckdb`, read-only) and the
config's items master (for item descriptions), and writes to `<output>/reports/<D>/`:

- `discrepancy_report_<D>.html`: one self-contained page (inline CSS and SVG charts, no script,
  nothing fetched at view time; Jinja2 with autoescape) with totals and value at stake gross and
  net by location and class, the top 20 discrepancies by absolute value with lineage back to the
  source file and line / segment, aging, inventory record accuracy over the last runs, oversell
  risk, alerts and data quality;
- `discrepancy_report_<D>.xlsx`: a Summary sheet and Detail / By location / Accuracy / Alerts
  sheets with autofilters and frozen headers, numbers stored as numbers, money in currency format;
- `discrepancies_<D>.csv`: the detail;
- `alerts.jsonl`: the run date's alerts (also written by `invrecon batch`).

The HTML links the run's entry in the Data Docs (`<output>/data_docs/index.html#run-<D>`, built by
`invrecon batch`): a relative link when both are on the local disk, the URL otherwise.

Every number comes from SQL over the warehouse views (pipelines.warehouse.VIEWS), so the report
says what an analyst's query says. Text that comes from source data and begins with `=`, `+`, `-`,
`@`, tab or CR is neutralized in XLSX and CSV (`neutralize`), since a spreadsheet would run it as a
formula; the HTML escapes everything.

Run locally after `make run`:

    invrecon report --config fixtures/world/config.yaml --run-date 2026-11-30 --output out
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import decimal
import io
import math
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import duckdb
import fsspec
import jinja2
import polars as pl
import pyarrow as pa
import xlsxwriter

from invrecon.pipelines import alerts, data_docs
from invrecon.pipelines.config import ConfigError, load_config
from invrecon.schemas import ALERTS

__all__ = ["DETAIL_COLUMNS", "FORMATS", "ReportData", "bar_chart", "gather", "line_chart", "main", "neutralize", "render_html", "write_csv", "write_xlsx"]

FORMATS = ("html", "xlsx", "csv")
# Run dates shown in the accuracy trend: a month of nightly runs reads well on one chart.
TREND_RUNS = 30
TOP_N = 20
# First characters a spreadsheet reads as the start of a formula (OWASP CSV injection), plus the
# full-width forms some locales also accept.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
CLASS_COLORS = {
    "missing_in_other": "#c0392b",
    "missing_in_record": "#e67e22",
    "qty_mismatch": "#8e44ad",
    "within_tolerance": "#b7950b",
    "timing": "#2471a3",
    "in_transit": "#17a589",
    "oversell_risk": "#6e2c00",
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

# (column, header, kind) of the detail sheet and CSV; kind picks the cell format.
DETAIL_COLUMNS = (
    ("snapshot_date", "Snapshot date", "date"),
    ("sku", "SKU", "text"),
    ("description", "Description", "text"),
    ("category", "Category", "text"),
    ("abc_class", "ABC", "text"),
    ("location", "Location", "text"),
    ("location_type", "Location type", "text"),
    ("record_system", "Record system", "text"),
    ("other_system", "Other system", "text"),
    ("class", "Class", "text"),
    ("record_qty", "Record qty", "int"),
    ("other_qty", "Other qty", "int"),
    ("delta", "Delta", "int"),
    ("raw_delta", "Raw delta", "int"),
    ("tolerance", "Tolerance", "num"),
    ("explained_qty", "Explained qty", "int"),
    ("unit_cost", "Unit cost", "money"),
    ("value_delta", "Value delta", "money"),
    ("currency", "Currency", "text"),
    ("first_seen", "First seen", "date"),
    ("age_days", "Age (days)", "int"),
    ("record_lineage", "Record lineage", "text"),
    ("other_lineage", "Other lineage", "text"),
)


def neutralize(text: str | None) -> str | None:
    """Make `text` inert in a spreadsheet: prefix a `'` when it would start a formula.

    Examples:
      >>> neutralize('=HYPERLINK("http://x","y")')
      '\\'=HYPERLINK("http://x","y")'
      >>> neutralize("SKU-1"), neutralize(None)
      ('SKU-1', None)
    """
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


# --------------------------------------------------------------------------- data


@dataclasses.dataclass
class ReportData:
    """Everything the three renderings show, each list a list of row dicts from SQL."""

    run_date: dt.date
    run: dict
    timezone: str
    record_system: str
    totals: list[dict]  # per currency
    by_class: list[dict]
    by_location: list[dict]
    by_location_class: list[dict]
    top: list[dict]
    detail: list[dict]
    aging: list[dict]
    oldest: list[dict]
    ira_trend: list[dict]
    oversell: list[dict]
    alerts: list[dict]
    dq: list[dict]
    quarantine: list[dict]
    data_docs: str | None = None  # link to the run in the Data Docs (pipelines.data_docs.link_from)

    @property
    def ira_today(self) -> dict:
        return self.ira_trend[-1] if self.ira_trend else {}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence = ()) -> list[dict]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    # The warehouse's money is DECIMAL(18,4) (exact sums); the report's charts and cells take floats.
    return [{n: float(v) if isinstance(v, decimal.Decimal) else v for n, v in zip(names, r)} for r in cur.fetchall()]


def _items(uri: str) -> pl.DataFrame:
    """sku, description, category, abc_class of the items master (absent columns are null)."""
    with fsspec.open(uri, "rb") as f:
        df = pl.read_csv(f.read(), infer_schema=False)
    wanted = ("sku", "description", "category", "abc_class")
    return df.select(*[pl.col(c) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c) for c in wanted]).unique("sku", keep="first")


class NoRunError(LookupError):
    """The warehouse has no run for the requested date."""


def gather(con: duckdb.DuckDBPyConnection, run_date: dt.date, *, items: pl.DataFrame | None = None, timezone: str = "UTC") -> ReportData:
    """Query the warehouse for one run date's report.

    Args:
      con: a connection to the warehouse (read-only is enough).
      run_date: the run date to report.
      items: the items master (sku, description, category, abc_class) for descriptions.
      timezone: the config's time zone, for the cut-off shown in the header.

    Raises:
      NoRunError: no run of `run_date` is in the warehouse.
    """
    runs = _rows(con, "SELECT run_id, run_date, status, config_sha256, started, finished, runner, message FROM runs WHERE run_date = ?", [run_date])
    if not runs:
        raise NoRunError(f"no run for {run_date} in the warehouse")
    d = [run_date]
    item_df = items if items is not None else pl.DataFrame(schema={c: pl.String for c in ("sku", "description", "category", "abc_class")})
    con.register("report_items", item_df.to_arrow())
    record_system = con.execute("SELECT any_value(record_system) FROM discrepancies WHERE snapshot_date = ?", d).fetchall()[0][0]
    unexplained = ", ".join(f"'{c}'" for c in alerts.UNEXPLAINED)
    totals = _rows(con, f"""
        SELECT currency, count(*) AS rows,
               round(coalesce(sum(abs(value_delta)), 0), 2) AS gross_value,
               round(coalesce(sum(value_delta), 0), 2) AS net_value,
               round(coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({unexplained})), 0), 2) AS unexplained_gross_value,
               round(coalesce(sum(value_delta) FILTER (WHERE class IN ({unexplained})), 0), 2) AS unexplained_net_value,
               CAST(coalesce(sum(abs(delta)), 0) AS BIGINT) AS abs_units
        FROM discrepancies WHERE snapshot_date = ? AND class <> 'oversell_risk'
        GROUP BY currency ORDER BY currency NULLS LAST""", d)
    by_class = _rows(con, """
        SELECT class, currency, sum(rows) AS rows, CAST(sum(abs_units) AS BIGINT) AS abs_units, CAST(sum(net_units) AS BIGINT) AS net_units,
               round(sum(gross_value), 2) AS gross_value, round(sum(net_value), 2) AS net_value
        FROM discrepancy_summary WHERE snapshot_date = ? GROUP BY ALL ORDER BY gross_value DESC, class""", d)
    by_location = _rows(con, """
        SELECT a.location, a.location_type, a.keys, a.exact_keys, a.within_tolerance_keys, a.ira_strict, a.ira_tolerance,
               x.record_units, x.abs_variance_units, x.net_variance_units, x.abs_deviation,
               v.currency, coalesce(v.rows, 0) AS rows, coalesce(v.gross_value, 0) AS gross_value,
               coalesce(v.net_value, 0) AS net_value, coalesce(v.unexplained_gross_value, 0) AS unexplained_gross_value,
               coalesce(v.explained_gross_value, 0) AS explained_gross_value
        FROM inventory_record_accuracy a
        JOIN absolute_deviation x USING (snapshot_date, location)
        LEFT JOIN value_variance v USING (snapshot_date, location)
        WHERE a.snapshot_date = ?
        ORDER BY gross_value DESC, a.location""", d)
    by_location_class = _rows(con, """
        SELECT location, location_type, other_system, class, currency, rows, net_units, abs_units, net_value, gross_value
        FROM discrepancy_summary WHERE snapshot_date = ? ORDER BY location, gross_value DESC, class, other_system""", d)
    detail_sql = """
        SELECT d.snapshot_date, d.sku, i.description, i.category, i.abc_class, d.location, d.location_type,
               d.record_system, d.other_system, d.class, d.record_qty, d.other_qty, d.delta, d.raw_delta,
               d.tolerance, d.explained_qty, d.unit_cost, d.value_delta, d.currency, d.first_seen, d.age_days,
               d.record_lineage, d.other_lineage
        FROM discrepancies d LEFT JOIN report_items i USING (sku)
        WHERE d.snapshot_date = ?"""
    detail = _rows(con, detail_sql + " ORDER BY abs(d.value_delta) DESC NULLS LAST, d.sku, d.location, d.other_system, d.class", d)
    top = _rows(con, detail_sql + " AND d.class <> 'oversell_risk' AND d.delta <> 0 ORDER BY abs(d.value_delta) DESC NULLS LAST, abs(d.delta) DESC, d.sku, d.location, d.other_system, d.class LIMIT ?", [run_date, TOP_N])
    aging = _rows(con, """
        SELECT age_bucket, age_bucket_order, count(*) AS rows, round(coalesce(sum(abs(value_delta)), 0), 2) AS gross_value
        FROM discrepancy_aging WHERE snapshot_date = ? GROUP BY ALL ORDER BY age_bucket_order""", d)
    oldest = _rows(con, """
        SELECT a.sku, i.description, a.location, a.other_system, a.class, a.first_seen, a.age_days, a.delta, a.value_delta, a.currency
        FROM discrepancy_aging a LEFT JOIN report_items i USING (sku)
        WHERE a.snapshot_date = ? ORDER BY a.age_days DESC, abs(a.value_delta) DESC NULLS LAST, a.sku, a.location LIMIT 10""", d)
    ira_trend = _rows(con, """
        SELECT snapshot_date, sum(keys) AS keys, sum(exact_keys) AS exact_keys, sum(within_tolerance_keys) AS within_tolerance_keys,
               round(sum(exact_keys) / sum(keys), 4) AS ira_strict, round(sum(within_tolerance_keys) / sum(keys), 4) AS ira_tolerance
        FROM inventory_record_accuracy
        WHERE snapshot_date <= ? AND snapshot_date IN (SELECT run_date FROM runs)
        GROUP BY snapshot_date ORDER BY snapshot_date DESC LIMIT ?""", [run_date, TREND_RUNS])[::-1]
    oversell = _rows(con, """
        SELECT o.sku, i.description, o.location, o.channel, o.atp, o.published, o.excess_units, o.excess_value, o.currency, o.age_days
        FROM oversell_risk o LEFT JOIN report_items i USING (sku)
        WHERE o.snapshot_date = ? ORDER BY o.excess_units DESC, o.sku, o.location""", d)
    fired = _rows(con, f"SELECT {', '.join(f.name for f in ALERTS)} FROM alerts WHERE snapshot_date = ? ORDER BY rule, subject", d)
    dq = _rows(con, "SELECT * FROM dq_trend WHERE run_date = ? ORDER BY source", d)
    quarantine = _rows(con, "SELECT source, reason_code, rows FROM quarantine_summary WHERE run_date = ? ORDER BY rows DESC, source, reason_code", d)
    return ReportData(
        run_date=run_date, run=runs[0], timezone=timezone, record_system=record_system or "",
        totals=totals, by_class=by_class, by_location=by_location, by_location_class=by_location_class,
        top=top, detail=detail, aging=aging, oldest=oldest, ira_trend=ira_trend, oversell=oversell,
        alerts=fired, dq=dq, quarantine=quarantine,
    )


# --------------------------------------------------------------------------- charts


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


# Lower bounds of the accuracy axis: four equal steps from each to 100% are round percentages.
IRA_AXIS_FLOORS = (0.96, 0.92, 0.8, 0.6, 0.2, 0.0)


def _ira_floor(values: Sequence[float | None]) -> float:
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


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, width: int = 760, height: int = 220, lo: float = 0.0, hi: float = 1.0) -> dict:
    """Geometry of a line chart over categorical x labels with values in [lo, hi].

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


def _charts(data: ReportData) -> dict:
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
        width=560, lo=_ira_floor([v for r in trend for v in (r["ira_strict"], r["ira_tolerance"])]),
    )
    return {"value": value_bars, "value_classes": classes, "aging": aging_bars, "ira": ira}


# --------------------------------------------------------------------------- HTML


def _money(value: Any, currency: str | None = None) -> str:
    if value is None:
        return ""
    text = f"{value:,.2f}"
    return f"{currency} {text}" if currency else text


def _int(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _num(value: Any) -> str:
    if value is None:
        return "none"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}%}"


def _lineage(value: str | None) -> dict:
    """Split "file:locator" lineage into the file's name, its full path and the locator."""
    if not value:
        return {"name": "", "path": "", "locator": ""}
    path, _, locator = value.rpartition(":") if ":" in value else (value, "", "")
    if not path:
        path, locator = value, ""
    return {"name": path.rsplit("/", 1)[-1], "path": path, "locator": locator}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(pathlib.Path(__file__).with_name("templates"))),
        autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, int=_int, num=_num, pct=_pct, lineage=_lineage)
    return env


def render_html(data: ReportData, *, generated: dt.datetime | None = None) -> str:
    """Render the self-contained HTML report."""
    generated = generated or dt.datetime.now(dt.timezone.utc)
    return _env().get_template("report.html.j2").render(
        d=data, charts=_charts(data), colors=CLASS_COLORS, generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        top_n=TOP_N, unexplained=alerts.UNEXPLAINED,
    )


# --------------------------------------------------------------------------- XLSX / CSV


def _currency_format(currency: str | None) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency or "")
    if symbol:
        return f'"{symbol}"#,##0.00;[Red]-"{symbol}"#,##0.00'
    suffix = f' "{currency}"' if currency else ""
    return f"#,##0.00{suffix};[Red]-#,##0.00{suffix}"


class _Sheet:
    """Write typed cells: numbers as numbers, dates as dates, text neutralized."""

    def __init__(self, book: xlsxwriter.Workbook):
        self.book = book
        self.fmt = {
            "header": book.add_format({"bold": True, "bg_color": "#1f3a5f", "font_color": "#ffffff", "border": 1, "text_wrap": True, "valign": "top"}),
            "int": book.add_format({"num_format": "#,##0;[Red]-#,##0"}),
            "num": book.add_format({"num_format": "#,##0.##"}),
            "pct": book.add_format({"num_format": "0.0%"}),
            "date": book.add_format({"num_format": "yyyy-mm-dd"}),
            "title": book.add_format({"bold": True, "font_size": 14}),
            "bold": book.add_format({"bold": True}),
        }
        self.money: dict[str | None, Any] = {}

    def money_fmt(self, currency: str | None):
        if currency not in self.money:
            self.money[currency] = self.book.add_format({"num_format": _currency_format(currency)})
        return self.money[currency]

    def cell(self, ws, row: int, col: int, value: Any, kind: str, currency: str | None = None) -> None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            ws.write_blank(row, col, None)
        elif kind == "text":
            ws.write_string(row, col, neutralize(str(value)))
        elif kind == "date":
            ws.write_datetime(row, col, dt.datetime.combine(value, dt.time()) if not isinstance(value, dt.datetime) else value.replace(tzinfo=None), self.fmt["date"])
        elif kind == "money":
            ws.write_number(row, col, float(value), self.money_fmt(currency))
        else:
            ws.write_number(row, col, float(value) if kind != "int" else int(value), self.fmt[kind])

    def table(self, ws, columns: Sequence[tuple[str, str, str]], rows: Sequence[dict], *, first_row: int = 0, freeze: bool = True) -> int:
        """Header + rows with an autofilter (and frozen header); returns the next free row."""
        for c, (_, header, _) in enumerate(columns):
            ws.write_string(first_row, c, header, self.fmt["header"])
        for r, row in enumerate(rows, start=first_row + 1):
            for c, (name, _, kind) in enumerate(columns):
                self.cell(ws, r, c, row.get(name), kind, row.get("currency"))
        last = first_row + max(len(rows), 1)
        ws.autofilter(first_row, 0, last, len(columns) - 1)
        if freeze:
            ws.freeze_panes(first_row + 1, 0)
        for c, (name, header, kind) in enumerate(columns):
            longest = max([len(header)] + [len(str(row.get(name) or "")) for row in rows[:500]])
            ws.set_column(c, c, min(max(10, longest + 2), 60 if kind == "text" else 18))
        return last + 2


LOCATION_COLUMNS = (
    ("location", "Location", "text"), ("location_type", "Location type", "text"), ("keys", "Keys", "int"),
    ("rows", "Discrepancies", "int"), ("gross_value", "Gross value", "money"), ("net_value", "Net value", "money"),
    ("unexplained_gross_value", "Unexplained gross value", "money"), ("explained_gross_value", "Explained gross value", "money"),
    ("currency", "Currency", "text"), ("ira_strict", "IRA strict", "pct"), ("ira_tolerance", "IRA within tolerance", "pct"),
    ("record_units", "Record units", "int"), ("abs_variance_units", "Σ|variance| units", "int"), ("abs_deviation", "Absolute deviation", "pct"),
)
LOCATION_CLASS_COLUMNS = (
    ("location", "Location", "text"), ("location_type", "Location type", "text"), ("other_system", "Other system", "text"),
    ("class", "Class", "text"), ("rows", "Rows", "int"), ("net_units", "Net units", "int"), ("abs_units", "Abs units", "int"),
    ("net_value", "Net value", "money"), ("gross_value", "Gross value", "money"), ("currency", "Currency", "text"),
)
IRA_COLUMNS = (
    ("snapshot_date", "Run date", "date"), ("keys", "Keys", "int"), ("exact_keys", "Exact keys", "int"),
    ("within_tolerance_keys", "Keys within tolerance", "int"), ("ira_strict", "IRA strict", "pct"), ("ira_tolerance", "IRA within tolerance", "pct"),
)
ALERT_COLUMNS = (
    ("rule", "Rule", "text"), ("subject", "Subject", "text"), ("severity", "Severity", "text"),
    ("threshold", "Threshold", "num"), ("observed", "Observed", "num"), ("message", "Message", "text"),
)


def write_xlsx(data: ReportData, path: str) -> None:
    """Write the workbook: Summary, Detail, By location, Accuracy, Alerts."""
    book = xlsxwriter.Workbook(path, {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False, "remove_timezone": True})
    s = _Sheet(book)
    ws = book.add_worksheet("Summary")
    ws.set_column(0, 0, 34)
    ws.set_column(1, 6, 18)
    ws.write_string(0, 0, f"Inventory discrepancy report {data.run_date}", s.fmt["title"])
    meta = [
        ("Run id", data.run["run_id"]), ("Run status", data.run["status"]), ("Record system", data.record_system),
        ("Cut-off", f"{data.run_date} 23:59:59.999 {data.timezone}"), ("Config sha256", data.run["config_sha256"]),
    ]
    row = 2
    for label, value in meta:
        ws.write_string(row, 0, label, s.fmt["bold"])
        s.cell(ws, row, 1, value, "text")
        row += 1
    row += 1
    for t in data.totals or [{"currency": None, "rows": 0, "gross_value": 0.0, "net_value": 0.0, "unexplained_gross_value": 0.0, "unexplained_net_value": 0.0, "abs_units": 0}]:
        cur = t["currency"]
        for label, key, kind in (
            ("Discrepancies (excl. oversell risk)", "rows", "int"),
            ("Value at stake, gross Σ|value|", "gross_value", "money"),
            ("Value at stake, net Σ value", "net_value", "money"),
            ("Unexplained value, gross", "unexplained_gross_value", "money"),
            ("Unexplained value, net", "unexplained_net_value", "money"),
            ("Units at variance Σ|delta|", "abs_units", "int"),
        ):
            tagged = cur and (kind == "money" or len(data.totals) > 1)
            ws.write_string(row, 0, label + (f" ({cur})" if tagged else ""), s.fmt["bold"])
            s.cell(ws, row, 1, t[key], kind, cur)
            row += 1
    ira = data.ira_today
    for label, key in (("IRA strict", "ira_strict"), ("IRA within tolerance", "ira_tolerance")):
        ws.write_string(row, 0, label, s.fmt["bold"])
        s.cell(ws, row, 1, ira.get(key), "pct")
        row += 1
    ws.write_string(row, 0, "Oversell risk units", s.fmt["bold"])
    s.cell(ws, row, 1, sum(r["excess_units"] for r in data.oversell), "int")
    row += 1
    ws.write_string(row, 0, "Alerts fired", s.fmt["bold"])
    s.cell(ws, row, 1, len(data.alerts), "int")
    row += 2
    ws.write_string(row, 0, "By class", s.fmt["bold"])
    row = s.table(ws, (("class", "Class", "text"), ("rows", "Rows", "int"), ("abs_units", "Abs units", "int"), ("net_units", "Net units", "int"),
                       ("gross_value", "Gross value", "money"), ("net_value", "Net value", "money"), ("currency", "Currency", "text")),
                  data.by_class, first_row=row + 1, freeze=False)
    s.table(book.add_worksheet("Detail"), DETAIL_COLUMNS, data.detail)
    s.table(book.add_worksheet("By location"), LOCATION_COLUMNS, data.by_location)
    # One autofilter per sheet: the location x class table gets its own sheet.
    s.table(book.add_worksheet("By location and class"), LOCATION_CLASS_COLUMNS, data.by_location_class)
    s.table(book.add_worksheet("Accuracy"), IRA_COLUMNS, data.ira_trend)
    s.table(book.add_worksheet("Alerts"), ALERT_COLUMNS, data.alerts)
    book.close()


def _csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "text":
        return neutralize(str(value)) or ""
    if kind == "date":
        return value.isoformat()
    if kind == "int":
        return str(int(value))
    return repr(round(float(value), 6))


def write_csv(data: ReportData, out: io.TextIOBase) -> None:
    """Write the detail as CSV (a header row, then one row per discrepancy)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow([name for name, _, _ in DETAIL_COLUMNS])
    for row in data.detail:
        w.writerow([_csv_value(row.get(name), kind) for name, _, kind in DETAIL_COLUMNS])


# --------------------------------------------------------------------------- CLI


def _replace(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="invrecon report", description="Write the finance discrepancy report for a run date.")
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--format", default=",".join(FORMATS), help="comma-separated: html,xlsx,csv (default all)")
    parser.add_argument("--output", help="the batch output folder holding warehouse.duckdb (default: the config's)")
    parser.add_argument("--report-dir", help="where to write (default <output>/reports/<run date>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3 (4: no run of that date)."""
    try:
        args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    try:
        run_date = dt.date.fromisoformat(args.run_date)
    except ValueError:
        print(f"invrecon report: --run-date {args.run_date!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        print(f"invrecon report: --format {args.format!r}: expected a comma-separated subset of {','.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        alerts.load_thresholds(cfg)
        items = _items(cfg.items)
    except ConfigError as e:
        print(f"invrecon report: config error: {e}", file=sys.stderr)
        return 2
    except (OSError, pl.exceptions.PolarsError) as e:
        print(f"invrecon report: items master {cfg.items}: {e}", file=sys.stderr)
        return 2
    output = (args.output or cfg.output).rstrip("/")
    db_path = f"{output}/warehouse.duckdb"
    if not os.path.exists(db_path):
        print(f"invrecon report: {db_path}: no warehouse; run `invrecon batch --run-date {run_date}` first", file=sys.stderr)
        return 4
    con = duckdb.connect(db_path, read_only=True)
    try:
        data = gather(con, run_date, items=items, timezone=cfg.timezone)
    except NoRunError:
        print(f"invrecon report: {db_path}: no run for {run_date}; run `invrecon batch --run-date {run_date}` first", file=sys.stderr)
        return 4
    finally:
        con.close()
    folder = (args.report_dir or alerts.report_dir(output, run_date)).rstrip("/")
    os.makedirs(folder, exist_ok=True)
    data.data_docs = data_docs.link_from(folder, output=output, run_date=run_date)
    written = []
    if "html" in formats:
        path = f"{folder}/discrepancy_report_{run_date}.html"
        html = render_html(data)
        _replace(path, lambda p: pathlib.Path(p).write_text(html, encoding="utf-8"))
        written.append(path)
    if "xlsx" in formats:
        path = f"{folder}/discrepancy_report_{run_date}.xlsx"
        _replace(path, lambda p: write_xlsx(data, p))
        written.append(path)
    if "csv" in formats:
        path = f"{folder}/discrepancies_{run_date}.csv"

        def _csv(p: str) -> None:
            with open(p, "w", encoding="utf-8", newline="") as f:
                write_csv(data, f)

        _replace(path, _csv)
        written.append(path)
    path = f"{folder}/alerts.jsonl"
    alerts.write_jsonl(pa.Table.from_pylist(data.alerts, schema=ALERTS), path)
    written.append(path)
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
