"""The report's figures: SQL over the warehouse views (pipelines.warehouse_views.VIEWS), nothing else.

Value at stake is the `value_variance` view's: the same filter (`AT_STAKE`) and sums
(`VALUE_SUMS`), rounded to cents, so the report's totals cannot drift from the view's.

Every query works whether the warehouse stores money as DOUBLE or DECIMAL and class as VARCHAR or
ENUM: DECIMAL results are turned into floats once, at the edge (`_rows`), so the renderings
format plain numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import pathlib
from collections.abc import Sequence

import duckdb
import fsspec
import polars as pl

from invrecon.pipelines.discrepancy_sql import AT_STAKE, VALUE_SUMS
from invrecon.pipelines.report.common import TOP_N, TREND_RUNS
from invrecon.schemas import ALERTS

__all__ = ["NoRunError", "ReportData", "gather", "read_items", "relative_lineage", "relativize"]

# The identity of a discrepancy across run dates: the aging key (pipelines.warehouse_views.AGE_KEY).
_KEY = ("sku", "location", "other_system", "class")


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
    top_total: int = 0  # rows the top list is chosen from ("Top N of M")
    top_n: int = TOP_N  # the most rows the top list shows
    currency: str | None = None  # the run's main currency: the format of money cells with none of their own
    previous_run_date: dt.date | None = None  # the succeeded run date before this one
    value_trend: list[dict] = dataclasses.field(default_factory=list)  # per run date and currency, oldest first
    changes: list[dict] = dataclasses.field(default_factory=list)  # new / carried over / resolved per currency
    aging_detail: list[dict] = dataclasses.field(default_factory=list)  # every open aged row
    data_docs: str | None = None  # link to the run in the Data Docs (pipelines.data_docs.link_from)
    lineage_base: str | None = None  # the folder lineage paths are relative to (the config's)

    @property
    def ira_today(self) -> dict:
        return self.ira_trend[-1] if self.ira_trend else {}

    @property
    def trend_runs(self) -> int:
        """How many run dates the value trend shows."""
        return len({r["run_date"] for r in self.value_trend})


class NoRunError(LookupError):
    """The warehouse has no run for the requested date."""


def _plain(value):
    return float(value) if isinstance(value, decimal.Decimal) else value


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | dict = ()) -> list[dict]:
    cur = con.execute(sql, params if isinstance(params, dict) else list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, map(_plain, r))) for r in cur.fetchall()]


def read_items(uri: str) -> pl.DataFrame:
    """sku, description, category, abc_class, currency of the items master (absent columns are null)."""
    with fsspec.open(uri, "rb") as f:
        df = pl.read_csv(f.read(), infer_schema=False)
    wanted = ("sku", "description", "category", "abc_class", "currency")
    return df.select(*[pl.col(c) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c) for c in wanted]).unique("sku", keep="first")


def _carried(alias: str, previous: str) -> str:
    """SQL: the row `alias` was open on the run date `previous` with the same key."""
    same = " AND ".join(f"p.{c} = {alias}.{c}" for c in _KEY)
    return f"EXISTS (SELECT 1 FROM discrepancies p WHERE p.snapshot_date = {previous} AND {same})"


_DETAIL_SQL = f"""
    SELECT d.snapshot_date, d.sku, i.description, i.category, i.abc_class, d.location, d.location_type,
           d.record_system, d.other_system, CAST(d.class AS VARCHAR) AS class, d.record_qty, d.other_qty, d.delta, d.raw_delta,
           d.tolerance, d.explained_qty, d.unit_cost, d.value_delta, d.currency, d.first_seen, d.age_days,
           CASE WHEN {_carried('d', '$previous')} THEN 'carried over' ELSE 'new' END AS since_previous,
           d.record_lineage, d.other_lineage
    FROM discrepancies d LEFT JOIN report_items i USING (sku)
    WHERE d.snapshot_date = $day"""
_ORDER = "abs(d.value_delta) DESC NULLS LAST, abs(d.delta) DESC, d.sku, d.location, d.other_system, CAST(d.class AS VARCHAR)"
_TOP = f"{AT_STAKE} AND d.delta <> 0"


def _value_sql(*names: str) -> str:
    """SQL: the value-at-stake sums `names` of the value_variance view (`VALUE_SUMS`), in cents."""
    return ", ".join(f"round({VALUE_SUMS[name]}, 2) AS {name}" for name in names)


def gather(con: duckdb.DuckDBPyConnection, run_date: dt.date, *, items: pl.DataFrame | None = None, timezone: str = "UTC", top_n: int = TOP_N) -> ReportData:
    """Query the warehouse for one run date's report.

    Args:
      con: a connection to the warehouse (read-only is enough).
      run_date: the run date to report.
      items: the items master (sku, description, category, abc_class, currency) for descriptions.
      timezone: the config's time zone, for the cut-off shown in the header.
      top_n: the most discrepancies the top list shows.

    Raises:
      NoRunError: no run of `run_date` is in the warehouse.
    """
    runs = _rows(con, "SELECT run_id, run_date, status, config_sha256, started, finished, runner, message FROM runs WHERE run_date = ?", [run_date])
    if not runs:
        raise NoRunError(f"no run for {run_date} in the warehouse")
    cols = ("sku", "description", "category", "abc_class", "currency")
    item_df = items if items is not None else pl.DataFrame(schema={c: pl.String for c in cols})
    con.register("report_items", item_df.select(*[pl.col(c) if c in item_df.columns else pl.lit(None, dtype=pl.String).alias(c) for c in cols]).to_arrow())
    d = [run_date]
    previous = con.execute("SELECT max(run_date) FROM runs WHERE run_date < ? AND status = 'succeeded'", d).fetchall()[0][0]
    data = ReportData(
        run_date=run_date, run=runs[0], timezone=timezone, previous_run_date=previous, top_n=top_n,
        record_system=con.execute("SELECT any_value(record_system) FROM discrepancies WHERE snapshot_date = ?", d).fetchall()[0][0] or "",
        totals=_rows(con, f"""
            SELECT currency, count(*) AS rows,
                   {_value_sql("gross_value", "net_value", "unexplained_gross_value", "unexplained_net_value")},
                   CAST(coalesce(sum(abs(delta)), 0) AS BIGINT) AS abs_units
            FROM discrepancies WHERE snapshot_date = ? AND {AT_STAKE}
            GROUP BY currency ORDER BY gross_value DESC, currency NULLS LAST""", d),
        **_by_location(con, run_date), **_detail(con, run_date, previous, top_n), **_aging(con, run_date),
        **_trends(con, run_date), **_quality(con, run_date),
    )
    data.currency = _main_currency(con, data)
    for r in data.by_location:  # a location without discrepancies: zero, in the run's currency
        r["currency"] = r["currency"] or data.currency
    data.changes = _changes(con, run_date, previous)
    return data


def _main_currency(con: duckdb.DuckDBPyConnection, data: ReportData) -> str | None:
    """The currency with the most value at stake, else the items master's most common one."""
    if data.totals and data.totals[0]["currency"]:
        return data.totals[0]["currency"]
    row = con.execute("SELECT currency FROM report_items WHERE currency IS NOT NULL GROUP BY ALL ORDER BY count(*) DESC, currency LIMIT 1").fetchall()
    return row[0][0] if row else None


def _by_location(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> dict:
    d = [run_date]
    return {
        "by_class": _rows(con, """
            SELECT CAST(class AS VARCHAR) AS class, currency, sum(rows) AS rows, CAST(sum(abs_units) AS BIGINT) AS abs_units,
                   CAST(sum(net_units) AS BIGINT) AS net_units, round(sum(gross_value), 2) AS gross_value, round(sum(net_value), 2) AS net_value
            FROM discrepancy_summary WHERE snapshot_date = ? GROUP BY ALL ORDER BY gross_value DESC, class""", d),
        "by_location": _rows(con, """
            SELECT a.location, a.location_type, a.keys, a.exact_keys, a.within_tolerance_keys, a.ira_strict, a.ira_tolerance,
                   x.record_units, x.abs_variance_units, x.net_variance_units, x.abs_deviation,
                   v.currency, coalesce(v.rows, 0) AS rows, coalesce(v.gross_value, 0) AS gross_value,
                   coalesce(v.net_value, 0) AS net_value, coalesce(v.unexplained_gross_value, 0) AS unexplained_gross_value,
                   coalesce(v.explained_gross_value, 0) AS explained_gross_value
            FROM inventory_record_accuracy a
            JOIN absolute_deviation x USING (snapshot_date, location)
            LEFT JOIN value_variance v USING (snapshot_date, location)
            WHERE a.snapshot_date = ?
            ORDER BY gross_value DESC, a.location""", d),
        "by_location_class": _rows(con, """
            SELECT location, location_type, other_system, CAST(class AS VARCHAR) AS class, currency, rows, net_units, abs_units, net_value, gross_value
            FROM discrepancy_summary WHERE snapshot_date = ? ORDER BY location, gross_value DESC, class, other_system""", d),
    }


def _detail(con: duckdb.DuckDBPyConnection, run_date: dt.date, previous: dt.date | None, top_n: int) -> dict:
    params = {"day": run_date, "previous": previous}
    top_params = {**params, "n": top_n}
    return {
        "detail": _rows(con, f"{_DETAIL_SQL} ORDER BY {_ORDER}", params),
        "top": _rows(con, f"{_DETAIL_SQL} AND {_TOP} ORDER BY {_ORDER} LIMIT $n", top_params),
        "top_total": con.execute(f"SELECT count(*) FROM discrepancies d WHERE d.snapshot_date = ? AND {_TOP}", [run_date]).fetchall()[0][0],
    }


def _aging(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> dict:
    d = [run_date]
    detail = _rows(con, """
        SELECT a.sku, i.description, a.location, a.other_system, CAST(a.class AS VARCHAR) AS class, a.first_seen, a.age_days,
               a.age_bucket, a.delta, a.value_delta, a.currency
        FROM discrepancy_aging a LEFT JOIN report_items i USING (sku)
        WHERE a.snapshot_date = ? ORDER BY a.age_days DESC, abs(a.value_delta) DESC NULLS LAST, a.sku, a.location, a.other_system""", d)
    return {
        "aging": _rows(con, f"""
            SELECT age_bucket, age_bucket_order, count(*) AS rows, {_value_sql("gross_value")}
            FROM discrepancy_aging WHERE snapshot_date = ? GROUP BY ALL ORDER BY age_bucket_order""", d),
        "oldest": detail[:10],
        "aging_detail": detail,
    }


def _trends(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> dict:
    """Record accuracy and value at stake over the last TREND_RUNS run dates, oldest first.

    The value trend counts each date's discrepancies new or carried over from the succeeded run
    date before it (the same sku, location, other system and class open on both).
    """
    ira = _rows(con, """
        SELECT snapshot_date, sum(keys) AS keys, sum(exact_keys) AS exact_keys, sum(within_tolerance_keys) AS within_tolerance_keys,
               round(sum(exact_keys) / sum(keys), 4) AS ira_strict, round(sum(within_tolerance_keys) / sum(keys), 4) AS ira_tolerance
        FROM inventory_record_accuracy
        WHERE snapshot_date <= ? AND snapshot_date IN (SELECT run_date FROM runs)
        GROUP BY snapshot_date ORDER BY snapshot_date DESC LIMIT ?""", [run_date, TREND_RUNS])[::-1]
    value = _rows(con, f"""
        WITH dates AS (
            SELECT run_date, lag(run_date) OVER (ORDER BY run_date) AS previous
            FROM (SELECT DISTINCT run_date FROM runs WHERE run_date <= $day AND (status = 'succeeded' OR run_date = $day))),
        shown AS (SELECT * FROM dates ORDER BY run_date DESC LIMIT $n),
        flagged AS (
            SELECT d.snapshot_date, d.currency, d.class, d.value_delta, {_carried('d', 't.previous')} AS carried
            FROM discrepancies d JOIN shown t ON t.run_date = d.snapshot_date
            WHERE {AT_STAKE})
        SELECT t.run_date, f.currency,
               count(f.snapshot_date) AS rows,
               {_value_sql("gross_value", "net_value", "unexplained_gross_value")},
               count(f.snapshot_date) FILTER (WHERE NOT f.carried) AS new_rows,
               count(f.snapshot_date) FILTER (WHERE f.carried) AS carried_rows,
               round(coalesce(sum(abs(f.value_delta)) FILTER (WHERE NOT f.carried), 0), 2) AS new_gross_value,
               round(coalesce(sum(abs(f.value_delta)) FILTER (WHERE f.carried), 0), 2) AS carried_gross_value,
               t.previous IS NULL AS first_run
        FROM shown t LEFT JOIN flagged f ON f.snapshot_date = t.run_date
        GROUP BY ALL ORDER BY t.run_date, f.currency NULLS FIRST""", {"day": run_date, "n": TREND_RUNS})
    return {"ira_trend": ira, "value_trend": value}


def _changes(con: duckdb.DuckDBPyConnection, run_date: dt.date, previous: dt.date | None) -> list[dict]:
    """Per currency: the run date's value at stake new and carried over, and what was resolved.

    Resolved: open on the previous succeeded run date, not on this one (same key).
    """
    if previous is None:
        return []
    params = {"day": run_date, "previous": previous}
    now = _rows(con, f"""
        SELECT currency, carried, count(*) AS rows, {_value_sql("gross_value")}
        FROM (SELECT currency, value_delta, {_carried('d', '$previous')} AS carried
              FROM discrepancies d WHERE snapshot_date = $day AND {AT_STAKE})
        GROUP BY ALL""", params)
    gone = _rows(con, f"""
        SELECT currency, count(*) AS rows, {_value_sql("gross_value")}
        FROM discrepancies d WHERE snapshot_date = $previous AND {AT_STAKE}
          AND NOT {_carried('d', '$day')} GROUP BY ALL""", params)
    out: dict[str | None, dict] = {}
    zero = {"new_rows": 0, "new_gross_value": 0.0, "carried_rows": 0, "carried_gross_value": 0.0, "resolved_rows": 0, "resolved_gross_value": 0.0}
    for r in now:
        kind = "carried" if r["carried"] else "new"
        out.setdefault(r["currency"], {"currency": r["currency"], **zero}).update({f"{kind}_rows": r["rows"], f"{kind}_gross_value": r["gross_value"]})
    for r in gone:
        out.setdefault(r["currency"], {"currency": r["currency"], **zero}).update(resolved_rows=r["rows"], resolved_gross_value=r["gross_value"])
    return sorted(out.values(), key=lambda r: (r["currency"] is None, r["currency"] or ""))


def _quality(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> dict:
    d = [run_date]
    return {
        "oversell": _rows(con, """
            SELECT o.sku, i.description, o.location, o.channel, o.atp, o.published, o.excess_units, o.excess_value, o.currency, o.age_days
            FROM oversell_risk o LEFT JOIN report_items i USING (sku)
            WHERE o.snapshot_date = ? ORDER BY o.excess_units DESC, o.sku, o.location""", d),
        "alerts": _rows(con, f"SELECT {', '.join(f.name for f in ALERTS)} FROM alerts WHERE snapshot_date = ? ORDER BY rule, subject", d),
        "dq": _rows(con, "SELECT * FROM dq_trend WHERE run_date = ? ORDER BY source", d),
        "quarantine": _rows(con, "SELECT source, reason_code, rows FROM quarantine_summary WHERE run_date = ? ORDER BY rows DESC, source, reason_code", d),
    }


# --------------------------------------------------------------------------- lineage


def _local(path: str) -> str | None:
    """The local path of `path` (a plain path or file:// URL), None for other URLs."""
    if path.startswith("file://"):
        return path.removeprefix("file://")
    return None if "://" in path else path


def relative_lineage(value: str | None, base: str) -> str | None:
    """Lineage ("file:locator", several joined by "; ") with each file relative to the folder `base`.

    Local files become relative paths (the report then names the same files on any machine that
    has the config's folder); URLs under `base` lose that prefix; other URLs stay whole.

    Examples:
      >>> relative_lineage("/srv/world/inputs/erp/erp.csv:line 4; /srv/world/inputs/edi/a.edi:segment 9 (ISA 1 / GS 2 / ST 3)", "/srv/world")
      'inputs/erp/erp.csv:line 4; inputs/edi/a.edi:segment 9 (ISA 1 / GS 2 / ST 3)'
      >>> relative_lineage("s3://b/world/inputs/x.csv:line 2", "s3://b/world"), relative_lineage("gs://o/x.csv:row 1", "/srv")
      ('inputs/x.csv:line 2', 'gs://o/x.csv:row 1')
    """
    if not value:
        return value
    parts = []
    for part in value.split("; "):
        path, sep, locator = part.rpartition(":")
        if not sep or not path or "/" in locator:  # no locator: the whole part is a path
            path, sep, locator = part, "", ""
        local, local_base = _local(path), _local(base)
        if local is not None and local_base is not None and os.path.isabs(local):
            path = pathlib.PurePath(os.path.relpath(local, local_base)).as_posix()
        elif path.startswith(base.rstrip("/") + "/"):
            path = path[len(base.rstrip("/")) + 1:]
        parts.append(f"{path}{sep}{locator}")
    return "; ".join(parts)


def relativize(data: ReportData, base: str) -> None:
    """Make the lineage of every detail row relative to `base` (the config file's folder)."""
    for rows in (data.detail, data.top):
        for r in rows:
            r["record_lineage"] = relative_lineage(r.get("record_lineage"), base)
            r["other_lineage"] = relative_lineage(r.get("other_lineage"), base)
    data.lineage_base = base
