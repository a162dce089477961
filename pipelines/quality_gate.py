"""Stage 2 of the batch: the data-quality gate between reading and reconciling.

Reads the staged canonical records (`<staging>/canonical/`), validates each source's batch with
Great Expectations (`transforms.quality`), writes what passes to `<staging>/{positions,movements,
in_transit_lines}`, the failing rows to quarantine and every expectation's result to
`dq_results`; then compares this run's data-quality metrics with the history in the warehouse
(`dq_metrics`) and records a warning for each metric that leaves `history_k` standard deviations
of the last `history_runs` runs, as Deequ's anomaly checks do.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import shutil

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.schemas import DQ_RESULTS, IN_TRANSIT, MOVEMENT, POSITION, QUARANTINE
from invrecon.transforms.quality import EXPECTATIONS_DIR, RECORD_SUITES, Validator, load_suite, suite_parameters

__all__ = ["DQ_METRICS", "Gate", "run"]

log = logging.getLogger("invrecon.quality")

SCHEMAS = {"positions": POSITION, "movements": MOVEMENT, "in_transit_lines": IN_TRANSIT}
# Which canonical records each kind of source can produce.
RECORDS_OF_KIND = {
    "positions": ("positions",),
    "availability": ("positions",),
    "events": ("movements",),
    "edi": ("positions", "movements", "in_transit_lines"),
}
DQ_METRICS = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("run_date", pa.date32()),
        pa.field("source", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


@dataclasses.dataclass
class Gate:
    failed: bool
    message: str = ""


def _read(pattern: str, schema: pa.Schema) -> pl.DataFrame:
    files = sorted(glob.glob(pattern))
    table = pa.concat_tables([pq.read_table(f).cast(schema) for f in files]) if files else schema.empty_table()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def _warehouse_rows(db: str, sql: str, params: list | None = None) -> list[tuple] | None:
    """Rows of a read-only query on the warehouse, or None when there is no such table yet."""
    if not os.path.exists(db):
        return None
    try:
        con = duckdb.connect(db, read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.Error:  # a first run: the table does not exist yet
        return None
    finally:
        con.close()


def _previous_rows(db: str, source: str, suite: str, run_date) -> int | None:
    rows = _warehouse_rows(
        db,
        "SELECT element_count FROM dq_results WHERE source = ? AND suite = ? AND run_date < ? "
        "AND expectation LIKE 'expect_table_row_count_to_be_between%' ORDER BY run_date DESC LIMIT 1",
        [source, suite, run_date],
    )
    return int(rows[0][0]) if rows else None


def _history(db: str, run_date, n: int) -> pl.DataFrame:
    rows = _warehouse_rows(
        db,
        "SELECT run_date, source, metric, value FROM dq_metrics WHERE run_date IN "
        "(SELECT DISTINCT run_date FROM dq_metrics WHERE run_date < ? ORDER BY run_date DESC LIMIT ?)",
        [run_date, int(n)],
    )
    schema = {"run_date": pl.Date, "source": pl.String, "metric": pl.String, "value": pl.Float64}
    return pl.DataFrame(rows or [], schema=schema, orient="row")


def _metrics(staging: str, job, quarantine: pl.DataFrame, written: dict[str, int]) -> list[dict]:
    from invrecon.pipelines.warehouse import read_counts

    read = read_counts(staging)
    out = []
    for spec, _ in job.sources:
        q = quarantine.filter(pl.col("source") == spec.name)
        out += [
            {"source": spec.name, "metric": "rows_read", "value": float(read.get(spec.name, 0))},
            {"source": spec.name, "metric": "rows_written", "value": float(written.get(spec.name, 0))},
            {"source": spec.name, "metric": "rows_quarantined", "value": float(q.height)},
        ]
        for (code,), g in q.group_by("reason_code"):
            out.append({"source": spec.name, "metric": f"quarantined:{code}", "value": float(g.height)})
    return out


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


def run(*, job, cfg, output: str) -> Gate:
    """Validate every source's staged batch; return whether a critical table-level check failed."""
    staging = job.staging
    canonical = f"{staging}/canonical"
    q = cfg.quality
    db = f"{output}/warehouse.duckdb"
    base = {rec: load_suite(EXPECTATIONS_DIR / name) for rec, name in RECORD_SUITES.items()}
    extra = {spec.name: load_suite(cfg.source(spec.name).suite) for spec, _ in job.sources if cfg.source(spec.name).suite}
    validator = Validator(f"{output}/data_docs", run_name=job.run_id)
    dq_rows: list[dict] = []
    quarantined: list[pl.DataFrame] = []
    written: dict[str, int] = {}
    failures: list[str] = []
    for record, schema in SCHEMAS.items():
        df = _read(f"{canonical}/{record}/*.parquet", schema)
        kept: list[pl.DataFrame] = []
        for spec, _ in job.sources:
            if record not in RECORDS_OF_KIND.get(spec.kind, ()):
                continue
            part = df.filter(pl.col("source") == spec.name)
            suites = [base[record]] + ([extra[spec.name]] if spec.name in extra and record == "positions" else [])
            previous = _previous_rows(db, spec.name, base[record]["name"], job.run_date)
            if part.height == 0 and not previous:
                continue  # nothing today and nothing last time: this source does not send these
            params = suite_parameters(cutoff=job.cutoff, previous_rows=previous, band=q.row_count_band, max_lag_hours=q.max_as_of_lag_hours)
            outcome = validator.validate(part, source=spec.name, record=record, suites=suites, params=params, run_id=job.run_id, run_date=job.run_date)
            dq_rows += outcome.results
            good = part.filter(outcome.keep)
            kept.append(good)
            written[spec.name] = written.get(spec.name, 0) + good.height
            if outcome.quarantine.height:
                quarantined.append(outcome.quarantine.with_columns(pl.lit(job.run_id).alias("run_id"), pl.lit(spec.name).alias("source")))
            if outcome.gate_failed:
                failed = [r["expectation"] for r in outcome.results if not r["success"] and r["severity"] == "critical"]
                failures.append(f"{spec.name} ({record}): {', '.join(failed)}")
        out_dir = f"{staging}/{record}"
        os.makedirs(out_dir, exist_ok=True)
        table = pl.concat(kept).to_arrow().cast(schema) if kept else schema.empty_table()
        pq.write_table(table, f"{out_dir}/part-00000-of-00001.parquet", compression="zstd")
    if quarantined:
        qdf = pl.concat(quarantined).select([f.name for f in QUARANTINE])
        pq.write_table(qdf.to_arrow().cast(QUARANTINE), f"{staging}/quarantine/part-dq.parquet")
    all_q = _read(f"{staging}/quarantine/*.parquet", QUARANTINE)
    metrics = _metrics(staging, job, all_q, written)
    dq_rows += _anomalies(metrics, _history(db, job.run_date, q.history_runs), k=q.history_k, min_runs=q.history_min_runs, job=job)
    os.makedirs(f"{staging}/dq_results", exist_ok=True)
    pq.write_table(pa.Table.from_pylist(dq_rows, schema=DQ_RESULTS), f"{staging}/dq_results/part-00000-of-00001.parquet")
    os.makedirs(f"{staging}/dq_metrics", exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist([{"run_id": job.run_id, "run_date": job.run_date, **m} for m in metrics], schema=DQ_METRICS),
        f"{staging}/dq_metrics/part-00000-of-00001.parquet",
    )
    shutil.rmtree(canonical, ignore_errors=True)
    return Gate(failed=bool(failures), message="; ".join(failures))


# Published when the gate fails: what went wrong and why, never the figures it stopped.
GATE_TABLES = {"quarantine": "run_date", "dq_results": "run_date", "dq_metrics": "run_date", "runs": "run_date"}


def publish_failed_gate(*, job, cfg, output: str, inputs: list[dict], started, runner: str, message: str) -> list[dict]:
    """Publish quarantine, dq_results, dq_metrics and a `dq_failed` runs row; nothing else.

    The previous run's snapshot and discrepancies for the date (if any) stay as they were, so
    finance never reads figures built on data the gate refused. Returns the conservation counts.
    """
    from invrecon.pipelines import warehouse

    staging = job.staging
    con = duckdb.connect()
    counts = warehouse._conservation(con, staging, job)
    con.close()
    warehouse.write_runs_row(staging, job=job, cfg=cfg, inputs=inputs, counts=counts, status="dq_failed", started=started, runner=runner, message=message)
    published = {}
    for table, col in GATE_TABLES.items():
        dst = f"{output}/{table}/{col}={job.run_date.isoformat()}"
        warehouse._publish_folder(f"{staging}/{table}", dst)
        published[table] = dst
    warehouse._load(f"{output}/warehouse.duckdb", published, job.run_date, tables=GATE_TABLES)
    shutil.rmtree(staging, ignore_errors=True)
    return counts
