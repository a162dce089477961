"""Beam transforms of the batch's first stage: read source files, de-duplicate events.

`ReadSource` turns the files of one configured source into canonical `pyarrow.Table` batches,
one tagged output per record type (`TAGS`); `DedupEvents` keeps the first occurrence of every
event_id across all files. Both are columnar: one element is a table of many records.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from invrecon.schemas import MOVEMENT, QUARANTINE
from invrecon.transforms.buckets import Bucketed, ShuffleBuckets, bucket_tables, concat_tables, split_by_bucket
from invrecon.transforms.canonical import Crosswalks, shared_crosswalks
from invrecon.transforms.coders import TableCoder  # noqa: F401 - registers the coder of pa.Table elements
from invrecon.transforms.edi import AckCollector
from invrecon.transforms.sources import SourceSpec, read_edi, read_events, read_tabular

__all__ = [
    "OUTPUT_TYPES",
    "TAGS",
    "DedupEvents",
    "ReadSources",
    "StampRunId",
    "WriteAcks",
    "WriteParquetFolder",
    "write_table",
]

log = logging.getLogger("invrecon.ingest")

# Outputs of reading, one tag per canonical record type, plus read counts and EDI 997s.
TAGS = ("positions", "availability", "movements", "in_transit", "quarantine", "counts", "acks")
# Element types of the tagged outputs: tables get `TableCoder` (weighed by buffers, never pickled).
OUTPUT_TYPES = {**{t: pa.Table for t in TAGS[:5]}, "counts": tuple[str, int], "acks": tuple[str, str]}
class ReadSourceFn(beam.DoFn):
    """Read one (source name, file URI) into canonical tables (tagged outputs).

    A file that fails in a way the readers did not foresee still never stops the run: it becomes
    one quarantine row `reader_error` naming the file and the exception.
    """

    def __init__(self, specs: Sequence[SourceSpec], sku_crosswalk: str, location_crosswalk: str):
        self.specs = {spec.name: spec for spec in specs}
        self.sku_crosswalk = sku_crosswalk
        self.location_crosswalk = location_crosswalk
        self.files_read = Metrics.counter(self.__class__, "files_read")
        self.records_read = Metrics.counter(self.__class__, "records_read")
        self.records_quarantined = Metrics.counter(self.__class__, "records_quarantined")

    def setup(self) -> None:
        self.crosswalks: Crosswalks = shared_crosswalks(self.sku_crosswalk, self.location_crosswalk)

    def _results(self, spec: SourceSpec, uri: str) -> Iterator:
        """The file's canonical results, a batch at a time; an EDI file's 997s come last."""
        if spec.kind in ("positions", "availability"):
            yield from read_tabular(uri, spec, self.crosswalks)
        elif spec.kind == "events":
            yield from read_events(uri, spec, self.crosswalks)
        elif spec.kind == "edi":
            acks = AckCollector()  # filled by the same pass that yields the records
            yield from read_edi(uri, spec, self.crosswalks, acks=acks)
            yield ("acks", acks.texts)
        else:
            raise ValueError(f"source kind {spec.kind!r} has no reader")

    def process(self, element: tuple[str, str]) -> Iterator:
        name, uri = element
        spec = self.specs[name]
        try:
            for r in self._results(spec, uri):
                yield from self._emit(spec, uri, r)
                del r
                # A batch's frames sit in reference cycles (closures, generator frames) that
                # Python's collector, counting objects not bytes, reaches late: at 10M events
                # that held ~4 GB. A young-generation pass per batch costs ~1 ms.
                gc.collect(1)
        except Exception as e:  # noqa: BLE001 - a bad file must not stop the run
            # What was emitted before the failure stays counted; the rest of the file is one
            # `reader_error` record, so the source still conserves its count.
            log.warning("%s: %s: %s", spec.name, uri, e, exc_info=True)
            q = pa.table(
                {"run_id": [""], "source": [spec.name], "file": [uri], "locator": ["file"],
                 "reason_code": ["reader_error"], "reason": [f"{uri}: {type(e).__name__}: {e}"], "raw": [None]},
                schema=QUARANTINE,
            )
            yield beam.pvalue.TaggedOutput("quarantine", q)
            yield beam.pvalue.TaggedOutput("counts", (spec.name, 1))
        self.files_read.inc()
        # DEBUG: counted by the launcher's live progress line (pipelines.progress), printed by nobody.
        log.debug("%s: %s: file read", spec.name, uri, extra={"files_read": 1})

    def _emit(self, spec: SourceSpec, uri: str, r) -> Iterator:
        if isinstance(r, tuple) and r[0] == "acks":
            name = uri.rsplit("/", 1)[-1]
            for k, text in enumerate(r[1]):
                yield beam.pvalue.TaggedOutput("acks", (f"{name}.{k + 1}.997", text))
            return
        self.records_read.inc(r.read)
        log.debug("%s: %s: %d records read", spec.name, uri, r.read, extra={"records_read": r.read})
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


@dataclasses.dataclass
class ReadSources(beam.PTransform):
    """Read every file of every source in one step; returns the tagged outputs of `TAGS`.

    One step, not one per source: the record types of all sources leave it together, so the
    steps that follow fuse with it instead of waiting for a flatten of every source's output.

    Example:
        out = p | "ReadSources" >> ReadSources(((spec, files), ...), sku_cw, loc_cw)
        out.positions, out.quarantine, out.counts ...
    """

    sources: tuple[tuple[SourceSpec, tuple[str, ...]], ...]
    sku_crosswalk: str
    location_crosswalk: str

    def expand(self, pbegin):
        files = [(spec.name, uri) for spec, uris in self.sources for uri in uris]
        return (
            pbegin
            | "ListFiles" >> beam.Create(files)
            | "ReadFiles" >> beam.ParDo(ReadSourceFn([spec for spec, _ in self.sources], self.sku_crosswalk, self.location_crosswalk))
            .with_output_types(pa.Table, **OUTPUT_TYPES)
            .with_outputs(*TAGS)
        )


def _line_no(locator: pl.Expr) -> pl.Expr:
    return locator.str.extract(r"(\d+)", 1).cast(pl.Int64, strict=False)


class DedupEventsFn(beam.DoFn):
    """Keep the first occurrence (by file, then line) of each event_id; quarantine repeats."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.duplicates = Metrics.counter(self.__class__, "events_deduplicated")

    def process(self, element: tuple[int, Iterable[tuple[str, bytes]]]) -> Iterator:
        _, tagged = element
        df = concat_tables((t for _, t in bucket_tables(tagged)), MOVEMENT)
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


@dataclasses.dataclass
class DedupEvents(beam.PTransform):
    """De-duplicate movements by event_id over a hash-bucket shuffle.

    Returns outputs `movements` (first occurrences) and `quarantine` (`duplicate_event` rows).
    """

    buckets: int
    run_id: str
    spill: str | None = None  # a folder: the shuffle goes through files there (`ShuffleBuckets`)

    def __post_init__(self) -> None:
        if self.buckets <= 0:
            raise ValueError("`buckets` must be > 0")

    def expand(self, movements):
        return (
            movements
            | "KeyByEventBucket" >> beam.FlatMap(split_by_bucket, ["event_id"], self.buckets, "movements").with_output_types(Bucketed)
            | "GroupEventBuckets" >> ShuffleBuckets(self.spill)
            | "KeepFirstOccurrence" >> beam.ParDo(DedupEventsFn(self.run_id)).with_output_types(pa.Table, quarantine=pa.Table).with_outputs("quarantine", main="movements")
        )


class _WriteBundleFileFn(beam.DoFn):
    """Write the tables of one bundle into one temporary Parquet file; emit its URL at the end.

    The file is written as the tables arrive (one row group each), so a bundle's memory is one
    table, not the bundle. A bundle the runner retries leaves its first file behind unnamed by
    any output: `_commit_files` only moves the files of the bundles that were committed.
    """

    def __init__(self, *, temp: str, schema: pa.Schema):
        self.temp, self.schema = temp, schema
        self.files_written = Metrics.counter(self.__class__, "files_written")
        self.rows_written = Metrics.counter(self.__class__, "rows_written")

    def setup(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.temp)

    def start_bundle(self) -> None:
        self.file = self.writer = self.url = None

    def process(self, table: pa.Table) -> None:
        if self.writer is None:
            name = f"{uuid.uuid4().hex}.parquet"
            self.fs.makedirs(self.root, exist_ok=True)
            self.file = self.fs.open(f"{self.root}/{name}", "wb")
            self.writer = pq.ParquetWriter(self.file, self.schema, compression="zstd")
            self.url = f"{self.temp}/{name}"
        table = table.select(self.schema.names)
        self.writer.write_table(table if table.schema.equals(self.schema) else table.cast(self.schema))
        self.rows_written.inc(table.num_rows)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.writer is None:
            return
        self.writer.close()
        self.file.close()
        self.files_written.inc()
        yield GlobalWindows.windowed_value(self.url)


def _commit_files(_, temp_urls: list[str], *, temp: str, folder: str, schema: pa.Schema) -> Iterator[str]:
    """Move the committed bundles' files to `<folder>/part-<k>-of-<n>.parquet`; yield their URLs.

    No file at all still gives one (empty, typed) file, so readers of the folder find the table.
    Safe to run again: a file already moved is not moved twice.
    """
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    urls = sorted(temp_urls)
    n = max(len(urls), 1)
    for k in range(n):
        dst = f"{root}/part-{k:05d}-of-{n:05d}.parquet"
        if not urls:
            with fs.open(dst, "wb") as f:
                pq.write_table(schema.empty_table(), f, compression="zstd")
        else:
            src = fsspec.core.url_to_fs(urls[k])[1]
            if fs.exists(src) or not fs.exists(dst):
                fs.mv(src, dst)
        yield f"{folder}/part-{k:05d}-of-{n:05d}.parquet"
    temp_fs, temp_root = fsspec.core.url_to_fs(temp)
    try:
        temp_fs.rm(temp_root, recursive=True)  # what retried bundles left behind
    except FileNotFoundError:
        pass


@dataclasses.dataclass
class WriteParquetFolder(beam.PTransform):
    """Write a PCollection of tables (or a tuple of them) as the Parquet files of `folder`, through fsspec.

    Any fsspec URL works (a path, `file://`, `s3://`, `gs://`, in-process `memory://`): Beam's
    own file sinks know neither `file://` nor `memory://`. Like Beam's file sinks, each bundle
    writes one temporary file and a last step moves the committed ones into place, so a retried
    bundle never leaves its rows twice. Returns the PCollection of the files' URLs (complete
    only once every file is in place: a side input of it waits for the whole folder). Several
    PCollections are written each by its own step, never flattened first: the in-process runner
    would hold a flattened PCollection whole in memory.

    Args:
      folder: the folder of the table's files (`<staging>/<table>`).
      temp: where the bundles write first (outside `folder`).
      schema: the files' schema; tables are conformed to it (column order, types).
    """

    folder: str
    temp: str
    schema: pa.Schema

    def expand(self, tables):
        parts = tables if isinstance(tables, (tuple, list)) else (tables,)
        fn = _WriteBundleFileFn(temp=self.temp, schema=self.schema)
        urls = [t | f"WriteBundleFiles{k or ''}" >> beam.ParDo(fn).with_output_types(str) for k, t in enumerate(parts)]
        temp_urls = urls[0] if len(urls) == 1 else urls | "FlattenFileUrls" >> beam.Flatten()
        return (
            parts[0].pipeline
            | "Once" >> beam.Create([None])
            | "CommitFiles" >> beam.FlatMap(
                _commit_files, beam.pvalue.AsList(temp_urls), temp=self.temp, folder=self.folder, schema=self.schema,
            ).with_output_types(str)
        )


def write_table(pcoll, name: str, schema: pa.Schema, staging: str):
    """Stage a table as `<staging>/<name>/part-*.parquet` (`WriteParquetFolder`); `pcoll` may be a tuple."""
    return pcoll | f"Write{''.join(w.title() for w in name.split('_'))}" >> WriteParquetFolder(
        folder=f"{staging}/{name}", temp=f"{staging}/_tmp/{name}", schema=schema,
    )


class StampRunId(beam.DoFn):
    """Set `run_id` on every row of a quarantine table (readers do not know the run)."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        idx = table.schema.get_field_index("run_id")
        yield table.set_column(idx, table.schema.field(idx), pa.array([self.run_id] * table.num_rows, pa.string()))


class WriteAcks(beam.DoFn):
    """Write each (name, text) 997 acknowledgement as a file under `folder`."""

    def __init__(self, folder: str):
        self.folder = folder

    def process(self, element: tuple[str, str]) -> None:
        name, text = element
        fs, _, _ = fsspec.get_fs_token_paths(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fsspec.open(f"{self.folder}/{name}", "w") as f:
            f.write(text)
