"""The nightly reconciliation: `invrecon batch --config CFG --run-date YYYY-MM-DD`.

Reads every configured source for the run date (ERP extracts, EDI files, store counts, commerce
availability, the day's stock events), canonicalizes ids, locations and units through the
crosswalks, de-duplicates events, finds shipments still in transit at the cut-off, rolls every
position to the cut-off, reconciles each system against the record system (DESIGN.md §6), and
writes the §7 tables as Parquet under the config's `output`, then loads them into
`<output>/warehouse.duckdb`.

Runs locally on the in-process FnApiRunner (no network needed):

    invrecon batch --config fixtures/world/config.yaml --run-date 2026-11-30

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
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from invrecon.pipelines.config import Config, ConfigError, load_config
from invrecon.schemas import DISCREPANCIES, IN_TRANSIT, INVENTORY_SNAPSHOT, MOVEMENT, POSITION, QUARANTINE
from invrecon.transforms.canonical import CrosswalkError, load_crosswalks, load_items
from invrecon.transforms.ingest import TAGS, DedupEvents, ReadSource, StampRunId, WriteAcks, write_table
from invrecon.transforms.reconcile import OpenInTransit, ReconcileBySkuLocation, ReconcileParams, Tolerance
from invrecon.transforms.sources import SourceSpec

__all__ = ["BatchJob", "build_ingest", "build_reconcile", "main", "plan_job"]

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
    staging: str
    sources: tuple[tuple[SourceSpec, tuple[str, ...]], ...]  # spec, input files
    tolerances: tuple[Tolerance, ...]
    buckets: int = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        if self.buckets <= 0:
            raise ValueError("`buckets` must be > 0")


def build_ingest(p: beam.Pipeline, job: BatchJob) -> None:
    """Stage 1: read every input file into canonical records, de-duplicate events.

    Writes `canonical/{positions,movements,in_transit_lines}`, `quarantine`, `counts` and `acks`
    under the staging folder; the data-quality gate reads them next.
    """
    reads = {tag: [] for tag in TAGS}
    for spec, files in job.sources:
        label = "".join(w.title() for w in spec.name.split("_"))
        out = p | f"Read{label}" >> ReadSource(spec, tuple(files), job.sku_crosswalk, job.location_crosswalk)
        for tag in TAGS:
            reads[tag].append(out[tag])

    def flat(tag: str):
        return tuple(reads[tag]) | f"Flatten{tag.title()}" >> beam.Flatten()

    deduped = flat("movements") | "DedupEvents" >> DedupEvents(job.buckets, job.run_id)
    quarantine = (
        (*reads["quarantine"], deduped.quarantine)
        | "FlattenQuarantine" >> beam.Flatten()
        | "StampRunId" >> beam.ParDo(StampRunId(job.run_id)).with_output_types(pa.Table)
    )
    canonical = f"{job.staging}/canonical"
    positions = (flat("positions"), flat("availability")) | "FlattenAllPositions" >> beam.Flatten()
    write_table(positions, "positions", POSITION, canonical)
    write_table(deduped.movements, "movements", MOVEMENT, canonical)
    write_table(flat("in_transit"), "in_transit_lines", IN_TRANSIT, canonical)
    write_table(quarantine, "quarantine", QUARANTINE, job.staging)
    (
        flat("counts")
        | "SumReadCounts" >> beam.CombinePerKey(sum)
        | "CountsJson" >> beam.Map(lambda kv: json.dumps({"source": kv[0], "read": kv[1]}))
        | "WriteReadCounts" >> beam.io.WriteToText(f"{job.staging}/counts/part", file_name_suffix=".jsonl")
    )
    flat("acks") | "WriteAcks" >> beam.ParDo(WriteAcks(f"{job.staging}/acks"))


def _split_availability(table: pa.Table, availability_sources: frozenset[str]) -> Iterator:
    df = pl.from_arrow(table)
    is_av = pl.col("source").is_in(list(availability_sources))
    pos, av = df.filter(~is_av), df.filter(is_av)
    if pos.height:
        yield pos.to_arrow().cast(POSITION)
    if av.height:
        yield beam.pvalue.TaggedOutput("availability", av.to_arrow().cast(POSITION))


def build_reconcile(p: beam.Pipeline, job: BatchJob) -> None:
    """Stage 3: reconcile the validated canonical records (DESIGN.md §6).

    Reads `positions`, `movements` and `in_transit_lines` from the staging folder (what the
    data-quality gate let through) and writes `inventory_snapshot`, `discrepancies` and the open
    `in_transit` lines.
    """
    staged = job.staging
    availability_sources = frozenset(spec.name for spec, _ in job.sources if spec.kind == "availability")
    split = (
        p
        | "ReadPositions" >> beam.io.ReadFromParquetBatched(f"{staged}/positions/*.parquet").with_output_types(pa.Table)
        | "SplitAvailability" >> beam.FlatMap(_split_availability, availability_sources).with_output_types(pa.Table, availability=pa.Table).with_outputs("availability", main="positions")
    )
    movements = p | "ReadMovements" >> beam.io.ReadFromParquetBatched(f"{staged}/movements/*.parquet").with_output_types(pa.Table)
    shipments = p | "ReadShipments" >> beam.io.ReadFromParquetBatched(f"{staged}/in_transit_lines/*.parquet").with_output_types(pa.Table)
    open_transit = (shipments, movements) | "OpenInTransit" >> OpenInTransit(job.buckets, job.cutoff)
    params = ReconcileParams(
        record_system=job.record_system, cutoff=job.cutoff, snapshot_date=job.run_date,
        tolerances=job.tolerances, run_id=job.run_id,
    )
    reconciled = {
        "positions": split.positions, "availability": split.availability,
        "movements": movements, "open_in_transit": open_transit,
    } | "Reconcile" >> ReconcileBySkuLocation(job.buckets, params, job.items, job.location_crosswalk)
    write_table(reconciled.snapshot, "inventory_snapshot", INVENTORY_SNAPSHOT, staged)
    write_table(reconciled.discrepancies, "discrepancies", DISCREPANCIES, staged)
    write_table(open_transit, "in_transit", IN_TRANSIT, staged)


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
            files.append({"source": s.name, "uri": uri, "size": int(fs.size(m)), "sha256": _sha256(fs, m)})
        m = s.mapping
        spec = SourceSpec(
            name=s.name, kind=s.kind, system=s.system, format=s.format,
            columns=tuple(m.columns.items()) if m else (),
            sku_id_type=m.sku_id_type if m else "sku",
            location_system=m.location_system if m else None,
            qualifiers=tuple(s.qualifiers.items()), timezone=cfg.timezone,
        )
        out.append((spec, files))
    return out


def _sha256(fs, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cutoff_for(run_date: dt.date, timezone: str) -> dt.datetime:
    """D 23:59:59.999 in the config's time zone, as UTC."""
    local = dt.datetime.combine(run_date, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
    return local.astimezone(dt.timezone.utc)


def plan_job(cfg: Config, run_date: dt.date, *, output: str, buckets: int = DEFAULT_BUCKETS) -> tuple[BatchJob, list[dict]]:
    """Resolve the run: input files with checksums, run id, staging folder, cut-off."""
    sources = _expand_inputs(cfg, run_date)
    inputs = [f for _, files in sources for f in files]
    digest = hashlib.sha256(cfg.sha256.encode())
    for f in sorted(inputs, key=lambda f: f["uri"]):
        digest.update(f"{f['source']}\0{f['uri'].rsplit('/', 1)[-1]}\0{f['sha256']}\n".encode())
    run_id = f"{run_date.isoformat()}-{digest.hexdigest()[:12]}"
    job = BatchJob(
        run_id=run_id,
        run_date=run_date,
        cutoff=cutoff_for(run_date, cfg.timezone),
        record_system=cfg.record_system,
        sku_crosswalk=cfg.sku_crosswalk,
        location_crosswalk=cfg.location_crosswalk,
        items=cfg.items,
        staging=f"{output}/_staging/{run_id}",
        sources=tuple((spec, tuple(f["uri"] for f in files)) for spec, files in sources),
        tolerances=tuple(Tolerance(tuple(sorted(t.match.items())), t.abs, t.pct) for t in cfg.tolerances),
        buckets=buckets,
    )
    return job, inputs


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="invrecon batch", description="Run the nightly reconciliation for a run date.")
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--output", help="override the config's output folder")
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="hash buckets of the (sku, location) shuffle")
    parser.add_argument("--allow-missing", default="", help="comma-separated sources that may have no files (or 'all')")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 5 when an alert fired")
    parser.add_argument("--quiet", action="store_true", help="no summary on stdout")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3."""
    from invrecon.pipelines import alerts as alert_rules
    from invrecon.pipelines import quality_gate, warehouse
    from invrecon.transforms.quality import SuiteError

    args, beam_args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        run_date = dt.date.fromisoformat(args.run_date)
    except ValueError:
        print(f"invrecon batch: --run-date {args.run_date!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        load_crosswalks(cfg.sku_crosswalk, cfg.location_crosswalk)  # fail fast, exit 2
        load_items(cfg.items)
        alert_rules.load_thresholds(cfg)
    except (ConfigError, CrosswalkError) as e:
        print(f"invrecon batch: config error: {e}", file=sys.stderr)
        return 2
    output = (args.output or cfg.output).rstrip("/")
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    try:
        job, inputs = plan_job(cfg, run_date, output=output, buckets=args.buckets)
    except ValueError as e:
        print(f"invrecon batch: {e}", file=sys.stderr)
        return 2
    allowed = {s.strip() for s in args.allow_missing.split(",") if s.strip()}
    missing = [spec.name for spec, files in job.sources if not files and spec.name not in allowed and "all" not in allowed]
    if missing:
        for name in missing:
            pattern = cfg.source(name).path.replace("{run_date}", run_date.isoformat())
            print(f"invrecon batch: source {name}: no input files match {pattern}", file=sys.stderr)
        print("invrecon batch: inputs missing for the run date (use --allow-missing SOURCE to run without them)", file=sys.stderr)
        return 4
    log.info("run %s: %d input files, cut-off %s", job.run_id, len(inputs), job.cutoff.isoformat())
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    runner_name = str(runner) if runner else "FnApiRunner"
    runner_obj = _runner(runner)
    fs, _, _ = fsspec.get_fs_token_paths(job.staging)
    if fs.exists(job.staging):
        fs.rm(job.staging, recursive=True)
    with beam.Pipeline(runner=runner_obj, options=options) as p:
        build_ingest(p, job)
    log.info("read and canonicalized in %.1f s", time.monotonic() - t0)
    try:
        gate = quality_gate.run(job=job, cfg=cfg, output=output)
    except SuiteError as e:
        print(f"invrecon batch: expectation suite error: {e}", file=sys.stderr)
        return 2
    log.info("data-quality gate %s in %.1f s", "FAILED" if gate.failed else "passed", time.monotonic() - t0)
    if not gate.failed:
        with beam.Pipeline(runner=_runner(runner), options=options) as p:
            build_reconcile(p, job)
        log.info("reconciled in %.1f s", time.monotonic() - t0)
    if gate.failed:
        quality_gate.publish_failed_gate(
            job=job, cfg=cfg, output=output, inputs=inputs, started=started, runner=runner_name, message=gate.message,
        )
        print(f"invrecon batch: data-quality gate failed: {gate.message}", file=sys.stderr)
        print(f"invrecon batch: quarantine and dq_results for {run_date} are in {output}; the reconciliation was not run", file=sys.stderr)
        return 3
    result = warehouse.finalize(
        job=job, cfg=cfg, output=output, inputs=inputs, started=started, runner=runner_name,
    )
    log.info("published and loaded in %.1f s", time.monotonic() - t0)
    if not args.quiet:
        print(warehouse.summary_text(result))
        print(f"  .venv/bin/invrecon report --config {args.config} --run-date {run_date} --output {output}")
    if result.status == "failed":
        return 1
    if args.fail_on_alert and result.alerts:
        return 5
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
