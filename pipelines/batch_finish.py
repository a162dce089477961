"""Finish a batch run after its graph: decide the gate, publish with one commit, clean up.

Reads the small files the graph staged (`_summary.json`, `_gate/`), stages the gate's tables and
the `runs` row, publishes (`pipelines.publish`), writes the alert reports and the Data Docs,
removes the staging folder, and refreshes the warehouse views.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import data_docs, quality_gate
from invrecon.pipelines.alerts import write_alerts_jsonl
from invrecon.pipelines.batch import BatchJob
from invrecon.pipelines.config import Config
from invrecon.pipelines.dimensions import dimension_tables
from invrecon.pipelines.progress import Progress
from invrecon.pipelines.publish import PLAN_FILE, Layout, crashpoint, publish
from invrecon.pipelines.quality_gate import load_history
from invrecon.pipelines.run_summary import RunResult
from invrecon.pipelines.warehouse import WarehouseLocked, ensure_warehouse
from invrecon.schemas import DQ_METRICS, DQ_RESULTS, RUNS
from invrecon.schemas.tables import GATE_TABLES, PARTITION_COLUMN

__all__ = ["finish_run", "refresh_warehouse", "run_data_docs", "runs_row"]

log = logging.getLogger("invrecon.batch")


def _read_text_files(pattern: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(pattern)
    out = []
    for f in sorted(fs.glob(path)):
        with fs.open(f, "r") as h:
            out += [line for line in h.read().splitlines() if line.strip()]
    return out


def finish_run(job: BatchJob, cfg: Config, *, inputs: list[dict], started: dt.datetime, runner: str, warehouse_db: str | None,
            progress: Progress):
    """From the graph's small files to the published run (the launcher's only work after the graph).

    Publishes with one commit (`pipelines.publish`: renames, commit, clean-up, the EDI acks),
    then writes the date's `alerts.jsonl` from the committed alerts, then removes the staging
    folder. The warehouse is refreshed by the caller (`refresh_warehouse`), after all that, so
    a locked warehouse leaves a fully published run and no staging behind. Stages: `gate`,
    `publish`, `data_docs`.
    """
    progress.begin("gate")
    # Workers in other processes or machines wrote the staging folder: listings that s3fs / gcsfs
    # cached while planning would not show their files.
    Layout(job.output).fs.invalidate_cache()
    summary = json.loads(fsspec.core.url_to_fs(f"{job.staging}/_summary.json")[0].cat_file(fsspec.core.url_to_fs(f"{job.staging}/_summary.json")[1]))
    results = [json.loads(line) for line in _read_text_files(f"{job.staging}/_gate/dq_results*.jsonl")]
    for r in results:
        r["run_date"] = job.run_date
    counts = summary["counts"]
    by_reason = {(s, c): n for s, c, n in summary["quarantined_by_reason"]}
    history = load_history(job.output, job.run_date)
    dq_rows, metric_rows, failures = quality_gate.decide(
        results=results, counts=counts, quarantined_by_reason=by_reason, gate=job.gate, history=history, cfg=cfg, job=job,
    )
    broken = [c for c in counts if not c["conserved"]]
    status = "dq_failed" if failures else ("failed" if broken else "succeeded")
    message = "; ".join(failures) if failures else "; ".join(
        f"{c['source']}: read {c['read']} != written {c['written']} + quarantined {c['quarantined']}" for c in broken)
    _stage_small(job.staging, "dq_results", pa.Table.from_pylist(dq_rows, schema=DQ_RESULTS))
    _stage_small(job.staging, "dq_metrics", pa.Table.from_pylist(metric_rows, schema=DQ_METRICS))
    _stage_small(job.staging, "runs", runs_row(job=job, cfg=cfg, inputs=inputs, counts=counts, status=status, started=started, runner=runner, message=message))
    if not failures:  # the items / locations this run used, for the analysts' joins
        for name, table in dimension_tables(cfg).items():
            _stage_small(job.staging, name, table)
    tables = GATE_TABLES if failures else tuple(PARTITION_COLUMN)
    progress.end(records_written=sum(c["written"] for c in counts), records_quarantined=sum(c["quarantined"] for c in counts),
                 expectations=len(dq_rows), failed=len(failures))
    progress.begin("publish")
    # EDI 997s go to partners, not to readers of the tables: `acks/run_date=D/` is replaced whole.
    published = publish(output=job.output, staging=job.staging, tables=tables, run_id=job.run_id, run_date=job.run_date,
                        attempt=job.attempt, replace_folders={"acks": f"acks/run_date={job.run_date.isoformat()}"})
    if not failures:  # after the commit, from the committed files: the report never runs ahead of the tables
        _write_alert_reports(job, published.get("alerts", []), summary["reaged"])
    progress.end(tables=len(tables), files=sum(len(files) for files in published.values()))
    progress.begin("data_docs")
    docs = run_data_docs(job, cfg, dq_rows, status=status, message=message)
    _remove_staging(job.staging)
    progress.end()
    return RunResult(
        run_id=job.run_id, run_date=job.run_date, status=status, output=job.output, warehouse=warehouse_db or "(none: --warehouse PATH)",
        counts=counts, classes=summary["classes"], value_at_stake=summary["value_at_stake"], net_value=summary["net_value"],
        quarantined=sum(c["quarantined"] for c in counts), alerts=summary["alerts"], message=message, data_docs=docs,
        warnings=tuple(quality_gate.warnings_of(dq_rows)),
    ), failures


def run_data_docs(job: BatchJob, cfg: Config, dq_rows: list[dict], *, status: str, message: str) -> str | None:
    """Build the run's Data Docs (`pipelines.data_docs`); their index, or None.

    Documentation never fails a run: a problem building it is logged and the run goes on.
    """
    keep = cfg.quality.data_docs_runs
    if keep < 1:
        return None
    try:
        return data_docs.build(output=job.output, rows=dq_rows, gate=job.gate, run_id=job.run_id, run_date=job.run_date,
                               status=status, message=message, keep_runs=keep)
    except Exception:  # documentation must not turn a published run into a failure
        log.exception("data docs: could not build them for run %s; the run itself is published", job.run_id)
        return None


def _write_alert_reports(job: BatchJob, alert_files: list[str], reaged: list[str]) -> None:
    """`reports/<D>/alerts.jsonl` of the run date and of each later date a backfill re-aged."""
    layout = Layout(job.output)
    by_date: dict[str, list[str]] = {}
    for rel in alert_files:  # alerts/snapshot_date=<date>/part-....parquet
        by_date.setdefault(rel.split("/")[1].split("=", 1)[1], []).append(layout.url(rel))
    write_alerts_jsonl(job.output, by_date.get(job.run_date.isoformat(), []), job.run_date)
    for later in reaged:
        write_alerts_jsonl(job.output, by_date.get(later, []), dt.date.fromisoformat(later))


def _remove_staging(staging: str) -> None:
    """Remove a published run's staging folder: its plan first, so a crash halfway is plain garbage."""
    fs, path = fsspec.core.url_to_fs(staging)
    try:
        fs.rm(f"{path}/{PLAN_FILE}")
    except FileNotFoundError:
        pass
    crashpoint("finish.staging")
    fs.rm(path, recursive=True)
    try:
        if not fs.ls(path.rsplit("/", 1)[0]):
            fs.rmdir(path.rsplit("/", 1)[0])
    except (FileNotFoundError, OSError):
        pass


def refresh_warehouse(warehouse_db: str | None, output: str, *, wait_s: float, run_id: str, progress: Progress) -> str | None:
    """Refresh the warehouse views after a publish; the one-line error when its file stays locked."""
    if not warehouse_db:
        return None
    progress.begin("warehouse")
    try:
        ensure_warehouse(warehouse_db, output, wait_s=wait_s)
    except WarehouseLocked as e:
        return (f"{e} (--warehouse-wait); run {run_id} is published in {output} (Parquet committed), only the "
                f"warehouse views were not refreshed: run `invrecon warehouse --output {output} --warehouse {warehouse_db}` "
                "once the lock is released")
    progress.end()
    return None


def _stage_small(staging: str, table: str, data: pa.Table) -> None:
    fs, path = fsspec.core.url_to_fs(f"{staging}/{table}/part-00000.parquet")
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(data, f, compression="zstd")


def runs_row(*, job, cfg, inputs: list[dict], counts: list[dict], status: str, started: dt.datetime, runner: str, message: str | None) -> pa.Table:
    """This run's `runs` row (finished now)."""
    return pa.table(
        {
            "run_id": [job.run_id], "run_date": [job.run_date], "config_sha256": [cfg.sha256],
            "inputs": [[{k: f[k] for k in ("source", "uri", "size", "sha256")} for f in inputs]],
            "counts": [counts], "status": [status], "started": [started],
            "finished": [dt.datetime.now(dt.UTC)], "runner": [runner], "message": [message or None],
        },
        schema=RUNS,
    )
