"""The nightly reconciliation's graph: `build(p, job)` for one planned run date (`BatchJob`).

Reads every configured source for the run date (ERP extracts, EDI files, store counts, commerce
availability, the day's stock events), canonicalizes ids, locations and units through the
crosswalks, de-duplicates events, finds shipments still in transit at the cut-off, rolls every
position to the cut-off, reconciles each system against the record system (DESIGN.md §6), and
stages the §7 tables as Parquet under the run's staging folder.

The launcher around it: `pipelines.batch_plan` resolves the job, `pipelines.batch_run` is the
`invrecon batch` command (one date or a backfill), and `pipelines.batch_finish` publishes what the
graph staged, loads the warehouse views and renders the Data Docs. Runs locally on the in-process
FnApiRunner (no network needed):

    invrecon batch --config fixtures/world/config.yaml --run-date 2026-11-30
    invrecon batch --config CFG --from 2026-11-01 --to 2026-11-30   # a backfill, resumable

Other runners by Beam flags: `--runner DataflowRunner --project ... --temp_location gs://...`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines.quality_gate import GatePlan
from invrecon.pipelines.settle import History, SettleRun
from invrecon.schemas import DISCREPANCIES, IN_TRANSIT, INVENTORY_SNAPSHOT, MOVEMENT, POSITION, QUARANTINE
from invrecon.transforms.acks import WriteAcks
from invrecon.transforms.dedup import DedupEvents
from invrecon.transforms.ingest import ReadSources, StampRunId
from invrecon.transforms.parquet_folder import write_table
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.reconcile.bucket import ReconcileParams
from invrecon.transforms.reconcile.classify import Tolerance
from invrecon.transforms.reconcile.composites import OpenInTransit, ReconcileBySkuLocation
from invrecon.transforms.validate import CombineDqResults, ValidateRecords

__all__ = ["DEFAULT_BUCKETS", "BatchJob", "build"]

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
        sources=tuple((spec, tuple(files)) for spec, files in job.sources),
        sku_crosswalk=job.sku_crosswalk, location_crosswalk=job.location_crosswalk,
    )
    spill = f"{job.staging}/_shuffle"  # shuffles go through files: memory bounded by a bucket
    deduped = reads.movements | "DedupEvents" >> DedupEvents(buckets=job.buckets, run_id=job.run_id, spill=f"{spill}/events")
    checked = {
        "Positions": _validated(reads.positions, "Positions", "positions", POSITION, job),
        "Availability": _validated(reads.availability, "Availability", "positions", POSITION, job),
        "Movements": _validated(deduped.movements, "Movements", "movements", MOVEMENT, job),
        "InTransitLines": _validated(reads["in_transit"], "InTransitLines", "in_transit_lines", IN_TRANSIT, job),
    }
    # No big table goes through a multi-input Flatten: the in-process runner materializes one
    # whole in memory. Each input is written, spilled and counted on its own; only file names
    # and counts are flattened.
    quarantine = (
        reads.quarantine | "StampRunId" >> beam.ParDo(StampRunId(job.run_id)).with_output_types(pa.Table),
        deduped.quarantine, *(c.quarantine for c in checked.values()),
    )
    _write_dq_results(tuple(c.results for c in checked.values()), job)
    written = _reconcile_and_write(checked, quarantine, job, spill=spill)
    counts = (
        reads.counts | "ReadCounts" >> beam.Map(lambda kv: ("read", kv[0], kv[1])),
        *(c.valid | f"WrittenCounts{label}" >> beam.FlatMap(_source_counts, "written") for label, c in checked.items()),
        *(pcoll | f"QuarantinedCounts{k}" >> beam.FlatMap(_source_counts, "quarantined") for k, pcoll in enumerate(quarantine)),
    ) | "FlattenAllCounts" >> beam.Flatten()
    reads.acks | "WriteAcks" >> beam.ParDo(WriteAcks(f"{job.staging}/acks"))
    counts | "SettleRun" >> SettleRun(
        staging=job.staging, run_id=job.run_id, run_date=job.run_date, cutoff=job.cutoff, thresholds=job.thresholds,
        sources=tuple((spec.name, spec.system, spec.kind) for spec, _ in job.sources), history=job.history,
        written=tuple(written),
    )


def _write_dq_results(partials: tuple, job: BatchJob) -> None:
    """The validation partials combined per (source, expectation) into `_gate/dq_results.jsonl`."""
    (
        partials
        | "FlattenDqPartials" >> beam.Flatten()
        | "CombineDqResults" >> CombineDqResults(params={})
        | "DqResultsJson" >> beam.Map(lambda r: json.dumps(r, default=str))
        # One small file (a line per source and expectation), written through fsspec: Beam's
        # text sink knows neither `file://` nor `memory://`.
        | "GatherDqResults" >> beam.combiners.ToList()
        | "WriteDqResults" >> beam.Map(_write_lines, f"{job.staging}/_gate/dq_results.jsonl")
    )


def _reconcile_and_write(checked: dict, quarantine: tuple, job: BatchJob, *, spill: str) -> list:
    """Open in-transit, reconcile every (sku, location), stage the tables; their file-name PCollections."""
    positions, availability = checked["Positions"].valid, checked["Availability"].valid
    movements, shipments = checked["Movements"].valid, checked["InTransitLines"].valid
    open_transit = (shipments, movements) | "OpenInTransit" >> OpenInTransit(buckets=job.buckets, cutoff=job.cutoff, spill=f"{spill}/shipments")
    params = ReconcileParams(
        record_system=job.record_system, cutoff=job.cutoff, snapshot_date=job.run_date,
        tolerances=job.tolerances, run_id=job.run_id,
    )
    reconciled = {
        "positions": positions, "availability": availability, "movements": movements, "open_in_transit": open_transit,
    } | "Reconcile" >> ReconcileBySkuLocation(
        buckets=job.buckets, params=params, items_uri=job.items, locations_uri=job.location_crosswalk, spill=f"{spill}/keys",
    )
    return [
        write_table((positions, availability), "positions", POSITION, job.staging),
        write_table(quarantine, "quarantine", QUARANTINE, job.staging),
        write_table(reconciled.snapshot, "inventory_snapshot", INVENTORY_SNAPSHOT, job.staging),
        write_table(reconciled.discrepancies, "discrepancies_unaged", DISCREPANCIES, job.staging),
        write_table(open_transit, "in_transit", IN_TRANSIT, job.staging),
        movements
        | "SplitByEventDate" >> beam.FlatMap(_split_by_event_date).with_output_types(tuple[str, pa.Table])
        | "WriteMovements" >> beam.ParDo(WriteEventDateFilesFn(f"{job.staging}/movements")),
    ]
