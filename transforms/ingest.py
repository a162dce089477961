"""Read every source file of the batch into canonical tables, one tagged output per record type.

`ReadSources` turns the files of the configured sources into canonical `pyarrow.Table` batches,
one tagged output per record type (`TAGS`), plus read counts and EDI 997s; `StampRunId` sets the
run on the readers' quarantine rows (a reader does not know the run). Both are columnar: one
element is a table of many records. De-duplication is `transforms.dedup`, the Parquet sink
`transforms.parquet_folder`, the 997 files `transforms.acks`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Iterator, Sequence

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from invrecon.schemas import QUARANTINE
from invrecon.transforms import quarantine
from invrecon.transforms.canonical import Crosswalks, shared_crosswalks
from invrecon.transforms.coders import TableCoder  # noqa: F401 - registers the coder of pa.Table elements
from invrecon.transforms.edi import AckCollector
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.readers.edi import read_edi
from invrecon.transforms.readers.events import read_events
from invrecon.transforms.readers.tabular import read_tabular

__all__ = ["OUTPUT_TYPES", "TAGS", "ReadSources", "StampRunId"]

log = logging.getLogger("invrecon.ingest")

# Outputs of reading, one tag per canonical record type, plus read counts and EDI 997s.
TAGS = ("positions", "availability", "movements", "in_transit", quarantine.TAG, "counts", "acks")
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
            yield beam.pvalue.TaggedOutput(quarantine.TAG, q)
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
            yield beam.pvalue.TaggedOutput(quarantine.TAG, r.quarantine)


@dataclasses.dataclass(kw_only=True)
class ReadSources(beam.PTransform):
    """Read every file of every source in one step; returns the tagged outputs of `TAGS`.

    One step, not one per source: the record types of all sources leave it together, so the
    steps that follow fuse with it instead of waiting for a flatten of every source's output.

    Example:
        out = p | "ReadSources" >> ReadSources(sources=((spec, files), ...), sku_crosswalk=sku_cw, location_crosswalk=loc_cw)
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


class StampRunId(beam.DoFn):
    """Set `run_id` on every row of a quarantine table (readers do not know the run)."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        idx = table.schema.get_field_index("run_id")
        yield table.set_column(idx, table.schema.field(idx), pa.array([self.run_id] * table.num_rows, pa.string()))
