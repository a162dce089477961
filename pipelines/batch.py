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
from collections.abc import Iterable, Iterator

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.config import Config, ConfigError, load_config
from schemas import DISCREPANCIES, IN_TRANSIT, INVENTORY_SNAPSHOT, MOVEMENT, POSITION, QUARANTINE
from transforms.canonical import CrosswalkError, Crosswalks, load_crosswalks, load_items
from transforms.reconcile import ReconcileParams, Tolerance, open_in_transit, reconcile_bucket
from transforms.sources import SourceSpec, canonical_from_edi, read_events, read_tabular

__all__ = ["BatchJob", "build_ingest", "build_reconcile", "main", "plan_job"]

log = logging.getLogger("invrecon.batch")

# Hash buckets for the (sku, location) shuffle: enough to spread over many workers, few enough
# that each bucket's polars join amortizes its overhead. Override with --buckets.
DEFAULT_BUCKETS = 32
# Outputs of the reading step, one tag per canonical record type.
TAGS = ("positions", "availability", "movements", "in_transit", "quarantine", "counts", "acks")


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


def _bucket_expr(cols: list[str], buckets: int) -> pl.Expr:
    # polars' hash is stable within one polars version, and every worker runs the same image.
    return (pl.concat_str([pl.col(c) for c in cols], separator="\x1f").hash(seed=0) % buckets).cast(pl.Int64)


def split_by_bucket(table: pa.Table, cols: list[str], buckets: int, tag: str) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
    """Split one table into (bucket, (tag, sub-table)) pairs by a stable hash of `cols`."""
    if table.num_rows == 0:
        return
    df = pl.from_arrow(table).with_columns(_bucket_expr(cols, buckets).alias("_bucket"))
    for (b,), part in df.partition_by("_bucket", as_dict=True).items():
        yield int(b), (tag, part.drop("_bucket").to_arrow().cast(table.schema))


def _concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pl.DataFrame:
    tables = [t for t in tables if t.num_rows]
    table = pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


class ReadSourceFn(beam.DoFn):
    """Read one input file of a source into canonical tables (tagged outputs).

    A file that fails in a way the readers did not foresee still never stops the run: it becomes
    one quarantine row `reader_error` naming the file and the exception.
    """

    def __init__(self, spec: SourceSpec, sku_crosswalk: str, location_crosswalk: str):
        self.spec = spec
        self.sku_crosswalk = sku_crosswalk
        self.location_crosswalk = location_crosswalk
        self.files_read = Metrics.counter(self.__class__, "files_read")
        self.records_read = Metrics.counter(self.__class__, "records_read")
        self.records_quarantined = Metrics.counter(self.__class__, "records_quarantined")

    def setup(self) -> None:
        self.crosswalks: Crosswalks = load_crosswalks(self.sku_crosswalk, self.location_crosswalk)

    def _results(self, uri: str) -> list:
        spec = self.spec
        if spec.kind in ("positions", "availability"):
            return list(read_tabular(uri, spec, self.crosswalks))
        if spec.kind == "events":
            return list(read_events(uri, spec, self.crosswalks))
        if spec.kind == "edi":
            from transforms.edi import build_997, parse_edi

            with fsspec.open(uri, "rb") as f:
                data = f.read()
            records = list(parse_edi(data, file=uri, qualifiers=dict(spec.qualifiers) or None))
            acks = build_997(data, file=uri)
            return [canonical_from_edi(records, uri, spec, self.crosswalks), ("acks", acks)]
        raise ValueError(f"source kind {spec.kind!r} has no reader")

    def process(self, uri: str) -> Iterator:
        spec = self.spec
        try:
            results = self._results(uri)
        except Exception as e:  # noqa: BLE001 - a bad file must not stop the run
            log.warning("%s: %s: %s", spec.name, uri, e)
            q = pa.table(
                {"run_id": [""], "source": [spec.name], "file": [uri], "locator": ["file"],
                 "reason_code": ["reader_error"], "reason": [f"{uri}: {type(e).__name__}: {e}"], "raw": [None]},
                schema=QUARANTINE,
            )
            results = []
            yield beam.pvalue.TaggedOutput("quarantine", q)
            yield beam.pvalue.TaggedOutput("counts", (spec.name, 1))
        self.files_read.inc()
        for r in results:
            if isinstance(r, tuple) and r[0] == "acks":
                name = uri.rsplit("/", 1)[-1]
                for k, text in enumerate(r[1]):
                    yield beam.pvalue.TaggedOutput("acks", (f"{name}.{k + 1}.997", text))
                continue
            self.records_read.inc(r.read)
            yield beam.pvalue.TaggedOutput("counts", (spec.name, r.read))
            if r.positions is not None and r.positions.num_rows:
                tag = "availability" if spec.kind == "availability" else "positions"
                yield beam.pvalue.TaggedOutput(tag, r.positions)
            if r.movements is not None and r.movements.num_rows:
                yield beam.pvalue.TaggedOutput("movements", r.movements)
            if r.in_transit is not None and r.in_transit.num_rows:
                yield beam.pvalue.TaggedOutput("in_transit", r.in_transit)
            if r.quarantine is not None and r.quarantine.num_rows:
                self.records_quarantined.inc(r.quarantine.num_rows)
                yield beam.pvalue.TaggedOutput("quarantine", r.quarantine)


def _line_no(locator: pl.Expr) -> pl.Expr:
    return locator.str.extract(r"(\d+)", 1).cast(pl.Int64, strict=False)


class DedupEventsFn(beam.DoFn):
    """Keep the first occurrence (by file, then line) of each event_id; quarantine repeats."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.duplicates = Metrics.counter(self.__class__, "events_deduplicated")

    def process(self, element: tuple[int, Iterable[tuple[str, pa.Table]]]) -> Iterator:
        _, tagged = element
        df = _concat((t for _, t in tagged), MOVEMENT)
        df = df.with_columns(_line_no(pl.col("locator")).alias("_n")).sort("file", "_n", "event_id", nulls_last=True)
        first = pl.col("event_id").is_first_distinct()
        kept = df.filter(first).drop("_n")
        dups = df.filter(~first)
        yield kept.to_arrow().cast(MOVEMENT)
        if dups.height:
            self.duplicates.inc(dups.height)
            q = dups.select(
                pl.lit(self.run_id).alias("run_id"),
                "source",
                "file",
                "locator",
                pl.lit("duplicate_event").alias("reason_code"),
                pl.format("event_id {} was already read; counted once", pl.col("event_id")).alias("reason"),
                pl.lit(None, dtype=pl.String).alias("raw"),
            )
            yield beam.pvalue.TaggedOutput("quarantine", q.to_arrow().cast(QUARANTINE))


class OpenInTransitFn(beam.DoFn):
    """Join shipments with their receipts within a shipment-id bucket; emit what is still open."""

    def __init__(self, cutoff: dt.datetime):
        self.cutoff = cutoff

    def process(self, element: tuple[int, Iterable[tuple[str, pa.Table]]]) -> Iterator[pa.Table]:
        _, tagged = element
        tagged = list(tagged)
        its = _concat((t for tag, t in tagged if tag == "in_transit"), IN_TRANSIT)
        if its.height == 0:
            return
        rec = _concat((t for tag, t in tagged if tag == "receipts"), MOVEMENT)
        out = open_in_transit(its, rec, self.cutoff)
        if out.height:
            yield out.to_arrow().cast(IN_TRANSIT)


def _receipts(table: pa.Table) -> pa.Table:
    df = pl.from_arrow(table).filter(
        pl.col("event_type").is_in(["receipt", "transfer_in"]) & pl.col("reference").is_not_null()
    )
    return df.to_arrow().cast(MOVEMENT)


def _both_ends(table: pa.Table, buckets: int) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
    """An open shipment matters at both its ends: route it to the from and the to bucket.

    The tag says which end the copy is for, so the bucket counts it once (inbound or outbound).
    """
    df = pl.from_arrow(table)
    for end in ("from_location", "to_location"):
        part = df.filter(pl.col(end).is_not_null())
        if part.height:
            yield from split_by_bucket(part.to_arrow(), ["sku", end], buckets, f"in_transit_{end}")


class ReconcileBucketFn(beam.DoFn):
    """Reconcile one hash bucket of (sku, location) keys (DESIGN.md §6)."""

    def __init__(self, params: ReconcileParams):
        self.params = params
        self.keys = Metrics.counter(self.__class__, "keys_reconciled")
        self.found = Metrics.counter(self.__class__, "discrepancies_found")

    def process(self, element, items: pa.Table, location_types: pa.Table, coverage: list[tuple[str, str]]) -> Iterator:
        _, tagged = element
        tagged = list(tagged)
        positions = _concat((t for tag, t in tagged if tag == "positions"), POSITION)
        if positions.height == 0 and not any(tag == "availability" for tag, _ in tagged):
            return
        availability = _concat((t for tag, t in tagged if tag == "availability"), POSITION)
        movements = _concat((t for tag, t in tagged if tag == "movements"), MOVEMENT)
        from_end = _concat((t for tag, t in tagged if tag == "in_transit_from_location"), IN_TRANSIT).with_columns(pl.lit(None, dtype=pl.String).alias("to_location"))
        to_end = _concat((t for tag, t in tagged if tag == "in_transit_to_location"), IN_TRANSIT).with_columns(pl.lit(None, dtype=pl.String).alias("from_location"))
        in_transit = pl.concat([from_end, to_end])
        cov = pl.DataFrame(coverage, schema={"system": pl.String, "location": pl.String}, orient="row")
        snap, disc = reconcile_bucket(
            positions=positions,
            availability=availability,
            movements=movements,
            in_transit=in_transit,
            items=pl.from_arrow(items),
            location_types=pl.from_arrow(location_types),
            coverage=cov,
            params=self.params,
        )
        self.keys.inc(snap.num_rows)
        self.found.inc(disc.num_rows)
        if snap.num_rows:
            yield snap
        if disc.num_rows:
            yield beam.pvalue.TaggedOutput("discrepancies", disc)


def _coverage(table: pa.Table) -> list[tuple[str, str]]:
    df = pl.from_arrow(table).filter(pl.col("on_hand").is_not_null()).select("system", "location").unique()
    return [tuple(r) for r in df.iter_rows()]


class _UnionFn(beam.CombineFn):
    def create_accumulator(self) -> set:
        return set()

    def add_input(self, acc: set, rows: list) -> set:
        acc.update(rows)
        return acc

    def merge_accumulators(self, accs: Iterable[set]) -> set:
        return set().union(*accs)

    def extract_output(self, acc: set) -> list:
        return sorted(acc)


def _load_items(uri: str) -> pa.Table:
    return load_items(uri).to_arrow()


def _location_types(uri: str) -> pa.Table:
    with fsspec.open(uri, "rb") as f:
        df = pl.read_csv(f.read(), infer_schema=False)
    return df.select("location", "location_type").unique("location", keep="first").to_arrow()


def _write(pcoll, name: str, schema: pa.Schema, staging: str):
    return pcoll | f"Write{''.join(w.title() for w in name.split('_'))}" >> beam.io.WriteToParquetBatched(
        file_path_prefix=f"{staging}/{name}/part",
        schema=schema,
        file_name_suffix=".parquet",
        codec="zstd",
    )


class _SetRunId(beam.DoFn):
    def __init__(self, run_id: str):
        self.run_id = run_id

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        idx = table.schema.get_field_index("run_id")
        yield table.set_column(idx, table.schema.field(idx), pa.array([self.run_id] * table.num_rows, pa.string()))


def build_ingest(p: beam.Pipeline, job: BatchJob) -> None:
    """Stage 1: read every input file into canonical records, de-duplicate events.

    Writes `canonical/{positions,movements,in_transit_lines}`, `quarantine`, `counts` and `acks`
    under the staging folder; the data-quality gate reads them next.
    """
    B = job.buckets
    reads = {tag: [] for tag in TAGS}
    for spec, files in job.sources:
        label = "".join(w.title() for w in spec.name.split("_"))
        out = (
            p
            | f"List{label}" >> beam.Create(list(files))
            | f"Read{label}" >> beam.ParDo(ReadSourceFn(spec, job.sku_crosswalk, job.location_crosswalk)).with_outputs(*TAGS)
        )
        for tag in TAGS:
            reads[tag].append(out[tag])

    def flat(tag: str):
        return tuple(reads[tag]) | f"Flatten{tag.title()}" >> beam.Flatten()

    deduped = (
        flat("movements")
        | "KeyByEventBucket" >> beam.FlatMap(lambda t: split_by_bucket(t, ["event_id"], B, "movements"))
        | "GroupEventBuckets" >> beam.GroupByKey()
        | "DedupEvents" >> beam.ParDo(DedupEventsFn(job.run_id)).with_outputs("quarantine", main="movements")
    )
    quarantine = (
        (*reads["quarantine"], deduped.quarantine)
        | "FlattenQuarantine" >> beam.Flatten()
        | "StampRunId" >> beam.ParDo(_SetRunId(job.run_id))
    )
    canonical = f"{job.staging}/canonical"
    positions = (flat("positions"), flat("availability")) | "FlattenAllPositions" >> beam.Flatten()
    _write(positions, "positions", POSITION, canonical)
    _write(deduped.movements, "movements", MOVEMENT, canonical)
    _write(flat("in_transit"), "in_transit_lines", IN_TRANSIT, canonical)
    _write(quarantine, "quarantine", QUARANTINE, job.staging)
    (
        flat("counts")
        | "SumReadCounts" >> beam.CombinePerKey(sum)
        | "CountsJson" >> beam.Map(lambda kv: json.dumps({"source": kv[0], "read": kv[1]}))
        | "WriteReadCounts" >> beam.io.WriteToText(f"{job.staging}/counts/part", file_name_suffix=".jsonl")
    )
    flat("acks") | "WriteAcks" >> beam.ParDo(_WriteAckFn(f"{job.staging}/acks"))


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
    B = job.buckets
    staged = job.staging
    availability_sources = frozenset(spec.name for spec, _ in job.sources if spec.kind == "availability")
    split = (
        p
        | "ReadPositions" >> beam.io.ReadFromParquetBatched(f"{staged}/positions/*.parquet")
        | "SplitAvailability" >> beam.FlatMap(_split_availability, availability_sources).with_outputs("availability", main="positions")
    )
    positions, availability = split.positions, split.availability
    movements = p | "ReadMovements" >> beam.io.ReadFromParquetBatched(f"{staged}/movements/*.parquet")
    shipments = p | "ReadShipments" >> beam.io.ReadFromParquetBatched(f"{staged}/in_transit_lines/*.parquet")
    open_transit = (
        (
            shipments | "KeyShipments" >> beam.FlatMap(lambda t: split_by_bucket(t, ["shipment_id"], B, "in_transit")),
            movements
            | "SelectReceipts" >> beam.Map(_receipts)
            | "KeyReceipts" >> beam.FlatMap(lambda t: split_by_bucket(t, ["reference"], B, "receipts")),
        )
        | "FlattenShipmentKeys" >> beam.Flatten()
        | "GroupShipments" >> beam.GroupByKey()
        | "FindOpenInTransit" >> beam.ParDo(OpenInTransitFn(job.cutoff))
    )
    coverage = (
        positions
        | "SystemLocations" >> beam.Map(_coverage)
        | "UnionCoverage" >> beam.CombineGlobally(_UnionFn())
    )
    items = p | "ItemsUri" >> beam.Create([job.items]) | "LoadItems" >> beam.Map(_load_items)
    loc_types = p | "LocationsUri" >> beam.Create([job.location_crosswalk]) | "LoadLocationTypes" >> beam.Map(_location_types)
    keyed = (
        positions | "KeyPositions" >> beam.FlatMap(lambda t: split_by_bucket(t, ["sku", "location"], B, "positions")),
        availability | "KeyAvailability" >> beam.FlatMap(lambda t: split_by_bucket(t, ["sku", "location"], B, "availability")),
        movements | "KeyMovements" >> beam.FlatMap(lambda t: split_by_bucket(t, ["sku", "location"], B, "movements")),
        open_transit | "KeyInTransitEnds" >> beam.FlatMap(lambda t: _both_ends(t, B)),
    )
    params = ReconcileParams(
        record_system=job.record_system, cutoff=job.cutoff, snapshot_date=job.run_date,
        tolerances=job.tolerances, run_id=job.run_id,
    )
    reconciled = (
        keyed
        | "FlattenKeyed" >> beam.Flatten()
        | "GroupBySkuLocation" >> beam.GroupByKey()
        | "ReconcileBuckets" >> beam.ParDo(
            ReconcileBucketFn(params),
            items=beam.pvalue.AsSingleton(items),
            location_types=beam.pvalue.AsSingleton(loc_types),
            coverage=beam.pvalue.AsSingleton(coverage),
        ).with_outputs("discrepancies", main="snapshot")
    )
    _write(reconciled.snapshot, "inventory_snapshot", INVENTORY_SNAPSHOT, staged)
    _write(reconciled.discrepancies, "discrepancies", DISCREPANCIES, staged)
    _write(open_transit, "in_transit", IN_TRANSIT, staged)


class _WriteAckFn(beam.DoFn):
    def __init__(self, folder: str):
        self.folder = folder

    def process(self, element: tuple[str, str]) -> None:
        name, text = element
        fs, _, _ = fsspec.get_fs_token_paths(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fsspec.open(f"{self.folder}/{name}", "w") as f:
            f.write(text)


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
    from pipelines import alerts as alert_rules
    from pipelines import quality_gate, warehouse
    from transforms.quality import SuiteError

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
