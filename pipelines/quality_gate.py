"""The launcher's side of the data-quality gate: from small files to one decision.

The suites run inside the Beam graph (`transforms.validate`), and their partial results are
combined there per (source, suite, expectation). Here, on the launcher, with nothing that grows
with the records:

- `plan` sets each source's suites and its `$PARAMETER` values before the graph runs (the row
  count band comes from the source's count in the previous run, read from the published
  `dq_results`);
- `decide` adds the source-level checks (a source that delivered no valid record, or far fewer
  than the median of its recent runs) and the metric history (Deequ-style anomaly checks on
  `dq_metrics`: a metric more than `history_k` standard deviations from its mean over the last
  `history_runs` runs is a warning), and says whether a critical expectation failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import statistics

import polars as pl

from invrecon.pipelines.publish import latest_commits, read_live_table
from invrecon.schemas import DQ_METRICS, DQ_RESULTS, RUNS
from invrecon.transforms.quality import EXPECTATIONS_DIR, RECORD_SUITES, load_suite, suite_parameters

__all__ = ["GateHistory", "GatePlan", "decide", "load_history", "plan", "stops_run", "warnings_of"]

log = logging.getLogger("invrecon.quality")

# Which canonical records each kind of source can produce.
RECORDS_OF_KIND = {
    "positions": ("positions",),
    "availability": ("positions",),
    "events": ("movements",),
    "edi": ("positions", "movements", "in_transit_lines"),
}


@dataclasses.dataclass(frozen=True)
class GateHistory:
    """What earlier runs published that the gate compares with (small tables)."""

    dq_results: pl.DataFrame
    dq_metrics: pl.DataFrame
    runs: pl.DataFrame

    @property
    def empty(self) -> bool:
        return self.runs.height == 0


def load_history(output: str, run_date: dt.date) -> GateHistory:
    """The published dq_results, dq_metrics and runs of every date but `run_date`."""
    commits = latest_commits(output)
    frames = []
    for table, schema in (("dq_results", DQ_RESULTS), ("dq_metrics", DQ_METRICS), ("runs", RUNS.remove(RUNS.get_field_index("inputs")))):
        df = pl.from_arrow(read_live_table(output, table, schema, commits=commits))
        frames.append(df.filter(pl.col("run_date") != run_date) if df.height else df)
    return GateHistory(*frames)


@dataclasses.dataclass(frozen=True)
class GatePlan:
    """record -> source -> suites, and source -> record -> `$PARAMETER` values."""

    suites: dict
    params: dict


def _previous_rows(history: GateHistory, source: str, suite: str, run_date: dt.date) -> int | None:
    h = history.dq_results
    if h.height == 0:
        return None
    rows = h.filter(
        (pl.col("source") == source) & (pl.col("suite") == suite) & (pl.col("run_date") < run_date)
        & pl.col("expectation").str.starts_with("expect_table_row_count_to_be_between")
    ).sort("run_date")
    return int(rows["element_count"][-1]) if rows.height else None


def plan(*, cfg, sources: list, run_date: dt.date, cutoff: dt.datetime, history: GateHistory) -> GatePlan:
    """Each source's suites per record type and its parameters for this run."""
    q = cfg.quality
    base = {rec: load_suite(EXPECTATIONS_DIR / name) for rec, name in RECORD_SUITES.items()}
    suites: dict = {rec: {} for rec in RECORD_SUITES}
    params: dict = {rec: {} for rec in RECORD_SUITES}
    for spec in sources:
        own = cfg.source(spec.name).suite
        extra = [load_suite(own)] if own else []
        for record in RECORDS_OF_KIND.get(spec.kind, ()):
            suites[record][spec.name] = [base[record]] + (extra if record == "positions" else [])
            previous = _previous_rows(history, spec.name, base[record]["name"], run_date)
            params[record][spec.name] = suite_parameters(cutoff=cutoff, previous_rows=previous, band=q.row_count_band, max_lag_hours=q.max_as_of_lag_hours)
    return GatePlan(suites=suites, params=params)


def _missing_row_counts(results: list[dict], gate: GatePlan, *, run_id: str, run_date: dt.date) -> list[dict]:
    """Row-count results of (source, suite)s that validated rows last time and none today."""
    seen = {(r["source"], r["suite"]) for r in results}
    out = []
    for record, by_source in gate.suites.items():
        for source, suites in by_source.items():
            params = gate.params[record][source]
            if params["min_rows"] <= 0:
                continue  # no earlier run had rows of this kind: nothing was expected
            for doc in suites:
                for exp in doc["expectations"]:
                    if exp["type"] == "expect_table_row_count_to_be_between" and (source, doc["name"]) not in seen:
                        out.append({
                            "run_id": run_id, "run_date": run_date, "source": source, "suite": doc["name"],
                            "expectation": exp["type"], "column": None, "success": False, "element_count": 0,
                            "unexpected_count": 0, "severity": exp["meta"]["severity"],
                            "details": json.dumps({"observed_value": 0, "min_rows": params["min_rows"]}),
                        })
    return out


def _source_volume(counts: list[dict], history: GateHistory, q, *, run_id: str, run_date: dt.date,
                   reasons: dict | None = None, files: dict | None = None) -> list[dict]:
    """A `source` row per source: it delivered valid records, and not far fewer than usual.

    The share is `quality.min_share_of_history` (default 0.5) of the median of the source's
    written records over its last `history_runs` runs; the severity is
    `quality.source_volume_severity` (default critical).
    """
    share = getattr(q, "min_share_of_history", 0.5)
    severity = getattr(q, "source_volume_severity", "critical")
    past: dict[str, list[int]] = {}
    if history.runs.height:
        runs = history.runs.filter(pl.col("status") == "succeeded").sort("run_date", descending=True).head(q.history_runs)
        for row in runs.select("counts").to_series().to_list():
            for c in row or []:
                past.setdefault(c["source"], []).append(int(c["written"]))
    out = []
    for c in counts:
        median = statistics.median(past[c["source"]]) if past.get(c["source"]) else None
        floor = math.ceil(share * median) if median else 1
        ok = c["written"] >= max(floor, 1)
        why = {"written": c["written"], "read": c["read"], "quarantined": c["quarantined"], "floor": max(floor, 1)}
        if median is not None:
            why["median_of_recent_runs"] = median
        if not ok:  # what a person needs to fix it: why the records were rejected, and where from
            why["quarantined_by_reason"] = {code: n for (src, code), n in sorted((reasons or {}).items()) if src == c["source"]}
            why["files"] = list((files or {}).get(c["source"], []))
        out.append({
            "run_id": run_id, "run_date": run_date, "source": c["source"], "suite": "source",
            "expectation": "expect_source_to_deliver_valid_records", "column": None, "success": ok,
            "element_count": c["read"], "unexpected_count": 0 if ok else 1, "severity": severity, "details": json.dumps(why),
        })
    return out


def metrics_of(counts: list[dict], quarantined_by_reason: dict[tuple[str, str], int]) -> list[dict]:
    """This run's dq_metrics rows (without run id and date) from the conservation counts."""
    out = []
    for c in counts:
        out += [
            {"source": c["source"], "metric": "rows_read", "value": float(c["read"])},
            {"source": c["source"], "metric": "rows_written", "value": float(c["written"])},
            {"source": c["source"], "metric": "rows_quarantined", "value": float(c["quarantined"])},
        ]
        for (source, code), n in sorted(quarantined_by_reason.items()):
            if source == c["source"]:
                out.append({"source": source, "metric": f"quarantined:{code}", "value": float(n)})
    return out


def decide(*, results: list[dict], counts: list[dict], quarantined_by_reason: dict, gate: GatePlan, history: GateHistory, cfg, job) -> tuple[list[dict], list[dict], list[str]]:
    """The run's dq_results and dq_metrics rows, and the critical failures (empty: the gate passed)."""
    q = cfg.quality
    rows = list(results) + _missing_row_counts(results, gate, run_id=job.run_id, run_date=job.run_date)
    files = {spec.name: [u.rsplit("/", 1)[-1] for u in uris] for spec, uris in job.sources}
    rows += _source_volume(counts, history, q, run_id=job.run_id, run_date=job.run_date, reasons=quarantined_by_reason, files=files)
    metrics = metrics_of(counts, quarantined_by_reason)
    hist = history.dq_metrics.select("run_date", "source", "metric", "value") if history.dq_metrics.height else _empty_history()
    recent = hist.select("run_date").unique().sort("run_date", descending=True).head(q.history_runs)
    rows += _anomalies(metrics, hist.join(recent, on="run_date"), k=q.history_k, min_runs=q.history_min_runs, job=job)
    failures: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if stops_run(r):
            failures.setdefault((r["source"], _record_of(r["suite"], gate, r["source"])), []).append(r["expectation"] + _explained(r))
    messages = [f"{source} ({record}): {', '.join(exps)}" for (source, record), exps in failures.items()]
    metric_rows = [{"run_id": job.run_id, "run_date": job.run_date, **m} for m in metrics]
    return rows, metric_rows, messages


def warnings_of(rows: list[dict]) -> list[str]:
    """One line per failed source-level or history check that did not stop the run (a warning):
    what the summary prints, so a lowered check is never silent."""
    return [f"{r['source']} ({r['suite']}): {r['expectation']}{_explained(r)}"
            for r in rows if not r["success"] and r["suite"] in ("source", "history") and not stops_run(r)]


def _explained(row: dict) -> str:
    """What a failed source check found, for the one-line message: counts, reasons, files."""
    if row["expectation"] != "expect_source_to_deliver_valid_records":
        return ""
    why = json.loads(row["details"] or "{}")
    text = f" ({why.get('written', 0)} valid of {why.get('read', 0)} read, at least {why.get('floor', 1)} needed"
    reasons = why.get("quarantined_by_reason") or {}
    if reasons:
        text += "; quarantined: " + ", ".join(f"{code} {n}" for code, n in reasons.items())
    files = why.get("files")
    text += "; files: " + (", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "") if files else "none")
    return text + ")"


def stops_run(row: dict) -> bool:
    """A failed critical expectation that gates the run (a row-level one quarantines its rows instead)."""
    return not row["success"] and row["severity"] == "critical" and not _row_level_only(row)


def _row_level_only(row: dict) -> bool:
    """A row-level expectation that failed without raising quarantined its rows: it does not gate."""
    from invrecon.transforms.quality import ROW_LEVEL_PREFIXES

    if row["suite"] in ("source", "history"):
        return False
    raised = "exception" in json.loads(row["details"] or "{}")
    return row["expectation"].startswith(ROW_LEVEL_PREFIXES) and not raised


def _record_of(suite: str, gate: GatePlan, source: str) -> str:
    for record, by_source in gate.suites.items():
        if any(doc["name"] == suite for doc in by_source.get(source, ())):
            return record
    return suite  # the source-level and history checks


def _empty_history() -> pl.DataFrame:
    return pl.DataFrame(schema={"run_date": pl.Date, "source": pl.String, "metric": pl.String, "value": pl.Float64})


def _anomalies(metrics: list[dict], history: pl.DataFrame, *, k: float, min_runs: int, job) -> list[dict]:
    """A dq_results row per metric, `success` false when it leaves mean +- k * std of history.

    A metric absent from an earlier run counts as 0 there (a reason code that never fired).
    """
    rows = []
    dates = history["run_date"].unique().to_list()
    for m in metrics:
        h = history.filter((pl.col("source") == m["source"]) & (pl.col("metric") == m["metric"]))
        values = {d: 0.0 for d in dates}
        for d, v in zip(h["run_date"], h["value"]):
            values[d] = v
        series = list(values.values())
        if len(series) < min_runs:
            continue
        mean = sum(series) / len(series)
        std = math.sqrt(sum((v - mean) ** 2 for v in series) / len(series))
        # A flat history (std 0) still flags a change: any departure from it is news.
        ok = abs(m["value"] - mean) <= k * std if std > 0 else m["value"] == mean
        rows.append(
            {
                "run_id": job.run_id, "run_date": job.run_date, "source": m["source"], "suite": "history",
                "expectation": f"metric_within_{k:g}_sigma({m['metric']})", "column": None, "success": ok,
                "element_count": len(series), "unexpected_count": 0 if ok else 1, "severity": "warning",
                "details": json.dumps({"value": m["value"], "mean": round(mean, 3), "std": round(std, 3), "runs": len(series)}),
            }
        )
        if not ok:
            log.warning("%s: %s = %g is outside %g +- %g x %g over the last %d runs", m["source"], m["metric"], m["value"], round(mean, 3), k, round(std, 3), len(series))
    return rows
