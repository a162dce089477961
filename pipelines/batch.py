"""The nightly reconciliation: `invrecon batch --config CFG --run-date YYYY-MM-DD`.

Reads every configured source for the run date (ERP extracts, EDI files, store counts, commerce
availability, the day's stock events), canonicalizes ids, locations and units through the
crosswalks, de-duplicates events, finds shipments still in transit at the cut-off, rolls every
position to the cut-off, reconciles each system against the record system (DESIGN.md §6), and
writes the §7 tables as Parquet under the config's `output`, then loads them into
`<output>/warehouse.duckdb` and renders the run's data-quality results as Great Expectations Data
Docs under `<output>/data_docs/` (`pipelines.data_docs`).

Runs locally on the in-process FnApiRunner (no network needed):

    invrecon batch --config fixtures/world/config.yaml --run-date 2026-11-30
    invrecon batch --config CFG --from 2026-11-01 --to 2026-11-30   # a backfill, resumable

Other runners by Beam flags: `--runner DataflowRunner --project ... --temp_location gs://...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import sys
import time
import zoneinfo
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from invrecon.pipelines import alerts as alert_rules
from invrecon.pipelines.beam_args import UsageError, check_beam_args
from invrecon.pipelines import quality_gate
from invrecon.pipelines.config import Config, ConfigError, load_config
from invrecon.pipelines.publish import PLAN_FILE, Layout, crashpoint, live_files, live_urls, new_attempt, publish, read_commits, recover
from invrecon.pipelines.quality_gate import GateHistory, GatePlan, load_history
from invrecon.pipelines.settle import History, SettleRun
from invrecon.pipelines.warehouse import (
    DEFAULT_WAIT_S, PUBLISHED, RunResult, WarehouseLocked, ensure_warehouse, summary_text, write_alerts_jsonl,
)
from invrecon.schemas import DISCREPANCIES, DQ_METRICS, DQ_RESULTS, IN_TRANSIT, INVENTORY_SNAPSHOT, MOVEMENT, POSITION, QUARANTINE, RUNS
from invrecon.transforms.canonical import CrosswalkError, file_sha256, load_items, shared_crosswalks
from invrecon.transforms.ingest import DedupEvents, ReadSources, StampRunId, WriteAcks, write_table
from invrecon.transforms.quality import SuiteError
from invrecon.transforms.reconcile import OpenInTransit, ReconcileBySkuLocation, ReconcileParams, Tolerance
from invrecon.transforms.sources import SourceSpec
from invrecon.transforms.validate import CombineDqResults, ValidateRecords

__all__ = ["BatchJob", "build", "main", "plan_job", "published_run"]

log = logging.getLogger("invrecon.batch")

# Hash buckets for the (sku, location) shuffle: enough to spread over many workers, few enough
# that each bucket's polars join amortizes its overhead. Override with --buckets.
DEFAULT_BUCKETS = 32


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """Everything the graph needs, resolved once from the config and CLI in `plan_job`."""

    run_id: str
    run_date: dt.date
    cutoff: dt.datetime
    record_system: str
    sku_crosswalk: str
    location_crosswalk: str
    items: str
    output: str
    attempt: str
    staging: str
    sources: tuple[tuple[SourceSpec, tuple[str, ...]], ...]  # spec, input files
    tolerances: tuple[Tolerance, ...]
    gate: GatePlan = GatePlan(suites={}, params={})
    thresholds: object = None
    history: History = History()
    buckets: int = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        if self.buckets <= 0:
            raise ValueError("`buckets` must be > 0")


def _source_counts(table: pa.Table, kind: str) -> list[tuple[str, str, int]]:
    """("written" | "quarantined:<code>", source, n) per source of one table."""
    df = pl.from_arrow(table)
    if kind == "quarantined":
        g = df.group_by("source", "reason_code").len()
        return [(f"quarantined:{code}", src, n) for src, code, n in g.iter_rows()]
    return [(kind, src, n) for src, n in df.group_by("source").len().iter_rows()]


def _split_by_event_date(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    df = pl.from_arrow(table).with_columns(pl.col("occurred_at").dt.convert_time_zone("UTC").dt.date().alias("_d"))
    for (day,), part in df.partition_by("_d", as_dict=True).items():
        yield str(day), part.drop("_d").to_arrow().cast(MOVEMENT)


class WriteEventDateFilesFn(beam.DoFn):
    """Stage one movements file per (table, event date), named after its content.

    The name is a hash of the table's event ids, so a retried bundle rewrites the same file
    instead of adding a second copy.
    """

    def __init__(self, folder: str):
        self.folder = folder

    def process(self, element: tuple[str, pa.Table]) -> Iterator[str]:
        import hashlib as _h

        day, table = element
        digest = _h.sha1("\x1f".join(table.column("event_id").to_pylist()).encode()).hexdigest()[:16]
        url = f"{self.folder}/event_date={day}--{digest}.parquet"
        fs, path = fsspec.core.url_to_fs(url)
        fs.makedirs(self.folder.split("://")[-1] if "://" in self.folder else self.folder, exist_ok=True)
        with fs.open(path, "wb") as f:
            pq.write_table(table, f, compression="zstd")
        yield url


def _write_lines(lines: list[str], url: str) -> str:
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, "".join(f"{line}\n" for line in sorted(lines)).encode())
    return url


def _validated(p_or_pcoll, label: str, record: str, schema: pa.Schema, job: BatchJob):
    return p_or_pcoll | f"Validate{label}" >> ValidateRecords(
        record=record, schema=schema, suites=job.gate.suites.get(record, {}), params=job.gate.params.get(record, {}),
        run_id=job.run_id, run_date=job.run_date,
    )


def build(p: beam.Pipeline, job: BatchJob) -> None:
    """The whole batch as one graph: read, canonicalize, validate, de-duplicate, reconcile, stage.

    Everything lands under `job.staging` (the launcher publishes it with one commit): the §7
    tables, the combined data-quality results (`_gate/`), the run's counts and figures
    (`_summary.json`, from `SettleRun`) and the EDI 997s (`acks/`).
    """
    reads = p | "ReadSources" >> ReadSources(
        tuple((spec, tuple(files)) for spec, files in job.sources), job.sku_crosswalk, job.location_crosswalk,
    )

    positions = _validated(reads.positions, "Positions", "positions", POSITION, job)
    availability = _validated(reads.availability, "Availability", "positions", POSITION, job)
    spill = f"{job.staging}/_shuffle"  # shuffles go through files: memory bounded by a bucket
    deduped = reads.movements | "DedupEvents" >> DedupEvents(job.buckets, job.run_id, spill=f"{spill}/events")
    movements = _validated(deduped.movements, "Movements", "movements", MOVEMENT, job)
    shipments = _validated(reads["in_transit"], "InTransitLines", "in_transit_lines", IN_TRANSIT, job)
    checked = (positions, availability, movements, shipments)
    # No big table goes through a multi-input Flatten: the in-process runner materializes one
    # whole in memory. Each input is written, spilled and counted on its own; only file names
    # and counts are flattened.
    quarantine = (
        reads.quarantine | "StampRunId" >> beam.ParDo(StampRunId(job.run_id)).with_output_types(pa.Table),
        deduped.quarantine, *(c.quarantine for c in checked),
    )
    (
        tuple(c.results for c in checked)
        | "FlattenDqPartials" >> beam.Flatten()
        | "CombineDqResults" >> CombineDqResults({})
        | "DqResultsJson" >> beam.Map(lambda r: json.dumps(r, default=str))
        # One small file (a line per source and expectation), written through fsspec: Beam's
        # text sink knows neither `file://` nor `memory://`.
        | "GatherDqResults" >> beam.combiners.ToList()
        | "WriteDqResults" >> beam.Map(_write_lines, f"{job.staging}/_gate/dq_results.jsonl")
    )
    open_transit = (shipments.valid, movements.valid) | "OpenInTransit" >> OpenInTransit(job.buckets, job.cutoff, spill=f"{spill}/shipments")
    params = ReconcileParams(
        record_system=job.record_system, cutoff=job.cutoff, snapshot_date=job.run_date,
        tolerances=job.tolerances, run_id=job.run_id,
    )
    reconciled = {
        "positions": positions.valid, "availability": availability.valid,
        "movements": movements.valid, "open_in_transit": open_transit,
    } | "Reconcile" >> ReconcileBySkuLocation(job.buckets, params, job.items, job.location_crosswalk, spill=f"{spill}/keys")
    written = [
        write_table((positions.valid, availability.valid), "positions", POSITION, job.staging),
        write_table(quarantine, "quarantine", QUARANTINE, job.staging),
        write_table(reconciled.snapshot, "inventory_snapshot", INVENTORY_SNAPSHOT, job.staging),
        write_table(reconciled.discrepancies, "discrepancies_unaged", DISCREPANCIES, job.staging),
        write_table(open_transit, "in_transit", IN_TRANSIT, job.staging),
        movements.valid
        | "SplitByEventDate" >> beam.FlatMap(_split_by_event_date).with_output_types(tuple[str, pa.Table])
        | "WriteMovements" >> beam.ParDo(WriteEventDateFilesFn(f"{job.staging}/movements")),
    ]
    kept = {"Positions": positions.valid, "Availability": availability.valid, "Movements": movements.valid, "InTransitLines": shipments.valid}
    counts = (
        reads.counts | "ReadCounts" >> beam.Map(lambda kv: ("read", kv[0], kv[1])),
        *(pcoll | f"WrittenCounts{label}" >> beam.FlatMap(_source_counts, "written") for label, pcoll in kept.items()),
        *(pcoll | f"QuarantinedCounts{k}" >> beam.FlatMap(_source_counts, "quarantined") for k, pcoll in enumerate(quarantine)),
    ) | "FlattenAllCounts" >> beam.Flatten()
    reads.acks | "WriteAcks" >> beam.ParDo(WriteAcks(f"{job.staging}/acks"))
    counts | "SettleRun" >> SettleRun(
        staging=job.staging, run_id=job.run_id, run_date=job.run_date, cutoff=job.cutoff, thresholds=job.thresholds,
        sources=tuple((spec.name, spec.system, spec.kind) for spec, _ in job.sources), history=job.history,
        written=tuple(written),
    )


def _runner(name: str | None):
    """The runner to use: the one named by --runner, else the in-process FnApiRunner."""
    if name:
        return name
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _expand_inputs(cfg: Config, run_date: dt.date) -> list[tuple[SourceSpec, list[dict]]]:
    out = []
    for s in cfg.sources:
        pattern = s.path.replace("{run_date}", run_date.isoformat())
        fs, _, _ = fsspec.get_fs_token_paths(pattern)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        matches = sorted(fs.glob(pattern)) if any(c in pattern for c in "*?[") else ([pattern] if fs.exists(pattern) else [])
        files = []
        for m in matches:
            if fs.isdir(m):
                continue
            uri = m if protocol in ("file", "local") else f"{protocol}://{m}"
            files.append({"source": s.name, "uri": uri, "size": int(fs.size(m)), "sha256": file_sha256(fs, m)})
        m = s.mapping
        spec = SourceSpec(
            name=s.name, kind=s.kind, system=s.system, format=s.format,
            columns=tuple(m.columns.items()) if m else (),
            sku_id_type=m.sku_id_type if m else "sku",
            location_system=m.location_system if m else None,
            qualifiers=tuple(s.qualifiers.items()), timezone=cfg.timezone,
            cutoff=cutoff_for(run_date, cfg.timezone),
            future_event_skew_hours=cfg.quality.future_event_skew_hours,
        )
        out.append((spec, files))
    return out


def cutoff_for(run_date: dt.date, timezone: str) -> dt.datetime:
    """D 23:59:59.999 in the config's time zone, as UTC."""
    local = dt.datetime.combine(run_date, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
    return local.astimezone(dt.timezone.utc)


def _history_for(output: str, run_date: dt.date, history: GateHistory, commits: pa.Table) -> History:
    """The published files this run's aging and alerts read (from the commits: metadata only)."""
    runs = history.runs.filter(pl.col("status") == "succeeded") if history.runs.height else history.runs
    dates = tuple(sorted(set(runs["run_date"].to_list()))) if runs.height else ()
    live = live_files(commits)
    layout = Layout(output)
    disc = tuple(layout.url(f) for (t, _, owner), files in sorted(live.items()) if t == "discrepancies" and owner in dates for f in files)
    later = tuple(
        (owner, tuple(layout.url(f) for f in files))
        for (t, _, owner), files in sorted(live.items()) if t == "alerts" and owner in dates and owner > run_date
    )
    run_ids = tuple((d, r) for d, r in runs.select("run_date", "run_id").iter_rows() if d > run_date) if runs.height else ()
    return History(run_dates=dates, discrepancies=disc, later_alerts=later, later_run_ids=run_ids)


def plan_job(cfg: Config, run_date: dt.date, *, output: str, buckets: int = DEFAULT_BUCKETS) -> tuple[BatchJob, list[dict]]:
    """Resolve the run: input files with checksums, run id, attempt, staging folder, cut-off, gate."""
    sources = _expand_inputs(cfg, run_date)
    inputs = [f for _, files in sources for f in files]
    digest = hashlib.sha256(cfg.sha256.encode())
    for f in sorted(inputs, key=lambda f: f["uri"]):
        digest.update(f"{f['source']}\0{f['uri'].rsplit('/', 1)[-1]}\0{f['sha256']}\n".encode())
    run_id = f"{run_date.isoformat()}-{digest.hexdigest()[:12]}"
    cutoff = cutoff_for(run_date, cfg.timezone)
    history = load_history(output, run_date)
    attempt = new_attempt()
    job = BatchJob(
        run_id=run_id,
        run_date=run_date,
        cutoff=cutoff,
        record_system=cfg.record_system,
        sku_crosswalk=cfg.sku_crosswalk,
        location_crosswalk=cfg.location_crosswalk,
        items=cfg.items,
        output=output,
        attempt=attempt,
        staging=Layout(output).staging(run_date, attempt),
        sources=tuple((spec, tuple(f["uri"] for f in files)) for spec, files in sources),
        tolerances=tuple(Tolerance(tuple(sorted(t.match.items())), t.abs, t.pct) for t in cfg.tolerances),
        gate=quality_gate.plan(cfg=cfg, sources=[spec for spec, _ in sources], run_date=run_date, cutoff=cutoff, history=history),
        thresholds=alert_rules.load_thresholds(cfg),
        history=_history_for(output, run_date, history, read_commits(output)),
        buckets=buckets,
    )
    return job, inputs


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="invrecon batch", description="Run the nightly reconciliation for a run date.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     epilog="Any other --flag is passed to Beam (e.g. --runner DataflowRunner --project P ...).")
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", help="YYYY-MM-DD: run this date (always runs, even if already published)")
    parser.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD",
                        help="backfill: the first run date (with --to; instead of --run-date); dates already published with the same inputs are skipped")
    parser.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD", help="backfill: the last run date (inclusive)")
    parser.add_argument("--force", action="store_true", help="backfill: also re-run dates already published with the same inputs")
    parser.add_argument("--output", help="override the config's output folder (a path or an fsspec URL: s3://, gs://, memory://)")
    parser.add_argument("--warehouse", help="the DuckDB warehouse file (local); default <output>/warehouse.duckdb for a local output, none otherwise")
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="hash buckets of the (sku, location) shuffle")
    parser.add_argument("--allow-missing", default="", help="comma-separated sources that may have no files (or 'all')")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 5 when an alert fired")
    parser.add_argument("--warehouse-wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help="how long to wait for a warehouse file another process holds read-write before failing (exit 1)")
    parser.add_argument("--quiet", action="store_true", help="no summary on stdout")
    args, rest = parser.parse_known_args(argv)
    return args, check_beam_args(rest, prog=parser.prog, own=parser)


def _stage(name: str, t0: float, **fields) -> float:
    """Log a stage's own duration as a structured line; returns the new stage start."""
    now = time.monotonic()
    log.info("stage %s done in %.2f s", name, now - t0, extra={"stage": name, "duration_s": round(now - t0, 3), **fields})
    return now


# The graph's steps by the first word of their top-level label (`build` names them).
STEP_GROUPS = (
    ("Read", "read"), ("Validate", "validate"), ("DedupEvents", "dedup"), ("OpenInTransit", "in_transit"),
    ("Reconcile", "reconcile"), ("Write", "write"), ("SplitByEventDate", "write"), ("SettleRun", "settle"),
)
_TOTAL_MSECS = "beam:metric:ptransform_execution_time:total_msecs:v1"


def step_times(pipeline_result) -> dict[str, float]:
    """Seconds each group of the graph's steps spent in its own code (Beam's per-step execution
    time, which excludes the steps it feeds); {} when the runner does not report it."""
    infos = getattr(pipeline_result, "monitoring_infos", None)
    if infos is None:
        return {}
    from apache_beam.metrics.monitoring_infos import extract_metric_result_map_value

    out: dict[str, float] = {}
    for info in infos():
        if info.urn != _TOTAL_MSECS:
            continue
        top = info.labels.get("PTRANSFORM", "").split("/", 1)[0]
        group = next((g for prefix, g in STEP_GROUPS if top.startswith(prefix)), "other")
        out[group] = out.get(group, 0.0) + (extract_metric_result_map_value(info) or 0) / 1000
    return out


def _log_step_times(pipeline_result, *, wall_s: float, run_id: str) -> None:
    """One JSON line per group of steps (`stage` "graph/<group>"), and the runner's own share."""
    times = step_times(pipeline_result)
    if not times:
        return
    for group, seconds in times.items():
        log.info("  graph step %s: %.2f s", group, seconds, extra={"stage": f"graph/{group}", "duration_s": round(seconds, 3), "run_id": run_id})
    runner_s = max(0.0, wall_s - sum(times.values()))
    log.info("  graph step runner (shuffles, coders, buffers): %.2f s", runner_s,
             extra={"stage": "graph/runner", "duration_s": round(runner_s, 3), "run_id": run_id})


def _read_text_files(pattern: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(pattern)
    out = []
    for f in sorted(fs.glob(path)):
        with fs.open(f, "r") as h:
            out += [line for line in h.read().splitlines() if line.strip()]
    return out


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _display(url: str) -> str:
    """A local path as a path (what a terminal user can open), anything else as its URL."""
    return url.removeprefix("file://") if _is_local(url) else url


def _warehouse_path(args, output: str) -> str | None:
    if args.warehouse:
        return args.warehouse
    return f"{output.removeprefix('file://')}/warehouse.duckdb" if _is_local(output) else None


def _finish(job: BatchJob, cfg: Config, *, inputs: list[dict], started: dt.datetime, runner: str, warehouse_db: str | None):
    """From the graph's small files to the published run (the launcher's only work after the graph).

    Publishes with one commit (`pipelines.publish`: renames, commit, clean-up, the EDI acks),
    then writes the date's `alerts.jsonl` from the committed alerts, then removes the staging
    folder. The warehouse is refreshed by the caller (`_refresh_warehouse`), after all that, so
    a locked warehouse leaves a fully published run and no staging behind.
    """
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
    tables = GATE_TABLES if failures else tuple(PUBLISHED)
    t0 = time.monotonic()
    # EDI 997s go to partners, not to readers of the tables: `acks/run_date=D/` is replaced whole.
    published = publish(output=job.output, staging=job.staging, tables=tables, run_id=job.run_id, run_date=job.run_date,
                        attempt=job.attempt, replace_folders={"acks": f"acks/run_date={job.run_date.isoformat()}"})
    _stage("publish", t0, run_id=job.run_id)
    if not failures:  # after the commit, from the committed files: the report never runs ahead of the tables
        _write_alert_reports(job, published.get("alerts", []), summary["reaged"])
    t0 = time.monotonic()
    docs = _data_docs(job, cfg, dq_rows, status=status, message=message)
    _stage("data_docs", t0, run_id=job.run_id)
    _remove_staging(job.staging)
    return RunResult(
        run_id=job.run_id, run_date=job.run_date, status=status, output=job.output, warehouse=warehouse_db or "(none: --warehouse PATH)",
        counts=counts, classes=summary["classes"], value_at_stake=summary["value_at_stake"], net_value=summary["net_value"],
        quarantined=sum(c["quarantined"] for c in counts), alerts=summary["alerts"], message=message, data_docs=docs,
        warnings=tuple(quality_gate.warnings_of(dq_rows)),
    ), failures


def _data_docs(job: BatchJob, cfg: Config, dq_rows: list[dict], *, status: str, message: str) -> str | None:
    """Build the run's Data Docs (`pipelines.data_docs`); their index, or None.

    Documentation never fails a run: a problem building it is logged and the run goes on.
    """
    keep = cfg.quality.data_docs_runs
    if keep < 1:
        return None
    from invrecon.pipelines import data_docs

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


def _refresh_warehouse(warehouse_db: str | None, output: str, *, wait_s: float, run_id: str) -> str | None:
    """Refresh the warehouse views after a publish; the one-line error when its file stays locked."""
    if not warehouse_db:
        return None
    t0 = time.monotonic()
    try:
        ensure_warehouse(warehouse_db, output, wait_s=wait_s)
    except WarehouseLocked as e:
        return (f"{e} (--warehouse-wait); run {run_id} is published in {output} (Parquet committed), only the "
                f"warehouse views were not refreshed: run `invrecon warehouse --output {output} --warehouse {warehouse_db}` "
                "once the lock is released")
    _stage("warehouse", t0, run_id=run_id)
    return None


# Published when the gate fails: what went wrong and why, never the figures it stopped.
GATE_TABLES = ("quarantine", "dq_results", "dq_metrics", "runs")


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
            "finished": [dt.datetime.now(dt.timezone.utc)], "runner": [runner], "message": [message or None],
        },
        schema=RUNS,
    )


def published_run(output: str, run_id: str, run_date: dt.date) -> bool:
    """Whether run `run_id` is the succeeded run the commit log holds for `run_date`.

    The run id is the run date plus a hash of the config and every input file, so this says
    "this date is already published from exactly these inputs". Reads one small file.
    """
    for url in live_urls(output, "runs", owner=run_date):
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            rows = pq.read_table(f, columns=["run_id", "status"]).to_pylist()
        if any(r["run_id"] == run_id and r["status"] == "succeeded" for r in rows):
            return True
    return False


def _run_date(cfg: Config, args: argparse.Namespace, beam_args: list[str], run_date: dt.date, output: str,
              *, skip_published: bool) -> tuple[int, str]:
    """Run one date (or skip it when published from the same inputs); the exit code and what was done."""
    t0 = time.monotonic()
    recover(output)  # what a run killed while finishing left behind (pipelines.publish)
    started = dt.datetime.now(dt.timezone.utc)
    warehouse_db = _warehouse_path(args, output)
    try:
        job, inputs = plan_job(cfg, run_date, output=output, buckets=args.buckets)
    except SuiteError as e:
        print(f"invrecon batch: expectation suite error: {e}", file=sys.stderr)
        return 2, f"failed (exit 2): expectation suite error: {e}"
    except ValueError as e:
        print(f"invrecon batch: {e}", file=sys.stderr)
        return 2, f"failed (exit 2): {e}"
    if skip_published and published_run(output, job.run_id, run_date):
        locked = _refresh_warehouse(warehouse_db, output, wait_s=args.warehouse_wait, run_id=job.run_id)
        if locked:
            print(f"invrecon batch: {locked}", file=sys.stderr)
            return 1, f"failed (exit 1): warehouse locked; run {job.run_id} was already published"
        return 0, f"skipped: already published as run {job.run_id}"
    allowed = {s.strip() for s in args.allow_missing.split(",") if s.strip()}
    missing = [spec.name for spec, files in job.sources if not files and spec.name not in allowed and "all" not in allowed]
    if missing:
        for name in missing:
            pattern = cfg.source(name).path.replace("{run_date}", run_date.isoformat())
            print(f"invrecon batch: source {name}: no input files match {pattern}", file=sys.stderr)
        print("invrecon batch: inputs missing for the run date (use --allow-missing SOURCE to run without them)", file=sys.stderr)
        return 4, f"failed (exit 4): inputs missing: {', '.join(missing)}"
    t0 = _stage("plan", t0, run_id=job.run_id, input_files=len(inputs))
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    runner_name = str(runner) if runner else "FnApiRunner"
    p = beam.Pipeline(runner=_runner(runner), options=options)
    build(p, job)
    graph_started = t0
    pipeline_result = p.run()
    pipeline_result.wait_until_finish()
    t0 = _stage("graph", t0, run_id=job.run_id)
    _log_step_times(pipeline_result, wall_s=t0 - graph_started, run_id=job.run_id)
    result, failures = _finish(job, cfg, inputs=inputs, started=started, runner=runner_name, warehouse_db=warehouse_db)
    locked = _refresh_warehouse(warehouse_db, output, wait_s=args.warehouse_wait, run_id=job.run_id)
    if failures:
        print(f"invrecon batch: data-quality gate failed: {'; '.join(failures)}", file=sys.stderr)
        print(f"invrecon batch: quarantine and dq_results for {run_date} are in {output}; the reconciliation was not published", file=sys.stderr)
        if result.data_docs:
            print(f"invrecon batch: which expectation failed, and why: {_display(result.data_docs)}", file=sys.stderr)
        if locked:
            print(f"invrecon batch: {locked}", file=sys.stderr)
        return 3, f"failed (exit 3): data-quality gate failed: {'; '.join(failures)}"
    if locked:
        print(f"invrecon batch: {locked}", file=sys.stderr)
        return 1, f"failed (exit 1): warehouse locked; run {job.run_id} is published"
    if not args.quiet:
        print(summary_text(result))
        if _is_local(output):  # the report reads <output>/warehouse.duckdb on this machine
            print(f"  .venv/bin/invrecon report --config {args.config} --run-date {run_date} --output {output.removeprefix('file://')}")
    if result.status == "failed":
        return 1, f"failed (exit 1): run {job.run_id} violated conservation: {result.message}"
    if args.fail_on_alert and result.alerts:
        return 5, f"failed (exit 5): run {job.run_id} is published; {result.alerts} alert(s) fired (--fail-on-alert)"
    return 0, f"ran: run {job.run_id} {result.status}, {sum(result.classes.values())} discrepancies, {result.alerts} alert(s)"


def _dates(args: argparse.Namespace) -> list[dt.date]:
    """The run dates the command line asks for, in order (raises UsageError)."""
    def day(flag: str, value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"invrecon batch: {flag} {value!r} is not a date (YYYY-MM-DD)") from None

    if args.run_date is not None:
        if args.from_date is not None or args.to_date is not None:
            raise UsageError("invrecon batch: give either --run-date or --from/--to, not both")
        return [day("--run-date", args.run_date)]
    if args.from_date is None or args.to_date is None:
        raise UsageError("invrecon batch: give --run-date YYYY-MM-DD, or --from YYYY-MM-DD --to YYYY-MM-DD for a backfill")
    first, last = day("--from", args.from_date), day("--to", args.to_date)
    if last < first:
        raise UsageError(f"invrecon batch: --to {last} is before --from {first}")
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3.

    A backfill (`--from D1 --to D2`) runs each date in order, skipping the dates already
    published from the same inputs, prints one line per date (`ran: ...`, `skipped: already
    published as run ...`, `failed (exit N): ...`) and stops at the first failure with that
    date's exit code; the same command resumes it.
    """
    try:
        args, beam_args = _parse_args(list(sys.argv[1:] if argv is None else argv))
        dates = _dates(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    if args.force and args.run_date is not None:
        print("invrecon batch: --force goes with --from/--to (--run-date always runs)", file=sys.stderr)
        return 2
    if args.warehouse_wait < 0:
        print(f"invrecon batch: --warehouse-wait must be >= 0, got {args.warehouse_wait:g}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        shared_crosswalks(cfg.sku_crosswalk, cfg.location_crosswalk)  # fail fast, exit 2 (and loaded once in-process)
        load_items(cfg.items)
        alert_rules.load_thresholds(cfg)
    except (ConfigError, CrosswalkError) as e:
        print(f"invrecon batch: config error: {e}", file=sys.stderr)
        return 2
    output = (args.output or cfg.output).rstrip("/")
    if args.run_date is not None:
        return _run_date(cfg, args, beam_args, dates[0], output, skip_published=False)[0]
    ran = skipped = 0
    for k, day in enumerate(dates):
        code, what = _run_date(cfg, args, beam_args, day, output, skip_published=not args.force)
        print(f"{day}: {what}", flush=True)
        if code:
            left = len(dates) - k - 1
            print(f"invrecon batch: backfill {dates[0]}..{dates[-1]} stopped at {day} (exit {code}), {left} later date(s) not run; "
                  "re-run the same command to resume (published dates are skipped)", file=sys.stderr)
            return code
        ran, skipped = ran + what.startswith("ran"), skipped + what.startswith("skipped")
    print(f"backfill {dates[0]}..{dates[-1]}: {ran} ran, {skipped} skipped", flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
