"""Great Expectations inside the Beam graph: validate batches on workers, combine the results.

`ValidateRecords` runs the suites of one canonical record type on every batch (one
`pyarrow.Table` element) of every source, on whichever worker holds it: the `Validator` (a GX
ephemeral context and the suites) is built once per worker in `setup()`. Rows that fail a
row-level expectation go to the `quarantine` output with the expectation as the reason; the rest
flow on. Every batch also emits one partial result per expectation, keyed by (source, suite,
expectation); `CombineDqResults` folds them into one `dq_results` row each
(`transforms.quality.combine_results`), from which the launcher takes the gate decision.

Uniqueness expectations hold within a call: batches of a source are gathered up to
VALIDATE_ROWS per call; movements arrive per de-duplication bucket (every copy of an event_id
lands in the same bucket) and positions per file read, so the shipped suites' keys are checked
over the whole source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
from collections.abc import Iterable, Iterator

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from invrecon.schemas import QUARANTINE
from invrecon.transforms import quarantine
from invrecon.transforms.coders import TableCoder  # noqa: F401 - registers the coder of pa.Table elements
from invrecon.transforms.quality import combine_results, shared_validator

__all__ = ["CombineDqResults", "ValidateRecords"]

Partial = tuple[tuple[str, str, str], dict]

# Rows of one source gathered before a Great Expectations call (bounded memory per worker).
VALIDATE_ROWS = 500_000


class ValidateRecordsFn(beam.DoFn):
    """Validate each source's rows of one table; see the module docstring."""

    def __init__(self, *, record: str, schema: pa.Schema, suites: dict, params: dict, run_id: str, run_date: dt.date):
        self.record, self.schema, self.suites, self.params = record, schema, suites, params
        self.run_id, self.run_date = run_id, run_date
        self.rows_validated = Metrics.counter(self.__class__, "rows_validated")
        self.rows_failed = Metrics.counter(self.__class__, "rows_failed")

    def setup(self) -> None:
        self.validator = shared_validator()

    def start_bundle(self) -> None:
        self.pending: dict[str, list[pl.DataFrame]] = {}
        self.pending_rows: dict[str, int] = {}

    def process(self, table: pa.Table) -> Iterator:
        df = pl.from_arrow(table)
        for (source,), part in df.partition_by("source", as_dict=True, maintain_order=True).items():
            if not self.suites.get(source):
                yield part.to_arrow().cast(self.schema)
                continue
            # GX costs ~0.1 s per call whatever the size: small batches (a Parquet row group,
            # an EDI file) are gathered per source up to VALIDATE_ROWS before they are checked.
            self.pending.setdefault(source, []).append(part)
            self.pending_rows[source] = self.pending_rows.get(source, 0) + part.height
            if self.pending_rows[source] >= VALIDATE_ROWS:
                yield from self._flush(source)

    def finish_bundle(self) -> Iterator:
        for source in list(self.pending):
            for out in self._flush(source):
                tag, value = (out.tag, out.value) if isinstance(out, beam.pvalue.TaggedOutput) else (None, out)
                windowed = WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])
                yield beam.pvalue.TaggedOutput(tag, windowed) if tag else windowed

    def _flush(self, source: str) -> Iterator:
        parts = self.pending.pop(source, [])
        self.pending_rows.pop(source, None)
        if not parts:
            return
        part = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
        outcome = self.validator.validate(
            part, source=source, record=self.record, suites=self.suites[source], params=self.params.get(source, {}),
            run_id=self.run_id, run_date=self.run_date,
        )
        self.rows_validated.inc(part.height)
        kept = part.filter(outcome.keep)
        if kept.height:
            yield kept.to_arrow().cast(self.schema)
        if outcome.quarantine.height:
            self.rows_failed.inc(outcome.quarantine.height)
            q = outcome.quarantine.with_columns(pl.lit(self.run_id).alias("run_id"), pl.lit(source).alias("source"))
            yield beam.pvalue.TaggedOutput(quarantine.TAG, q.select([f.name for f in QUARANTINE]).to_arrow().cast(QUARANTINE))
        for r in outcome.results:
            yield beam.pvalue.TaggedOutput("results", ((r["source"], r["suite"], r["expectation"]), r))
        del part, kept, outcome
        gc.collect(1)  # frames in reference cycles go now, not when the object count says so


@dataclasses.dataclass(kw_only=True)
class ValidateRecords(beam.PTransform):
    """Validate batches of one canonical record type; outputs `valid`, `quarantine`, `results`.

    Example:
        checked = positions | "ValidatePositions" >> ValidateRecords(
            record="positions", schema=POSITION, suites={"erp_nightly": [suite]}, params={...}, ...)
        checked.valid, checked.quarantine, checked.results
    """

    record: str
    schema: pa.Schema
    suites: dict  # source -> GX suite documents
    params: dict  # source -> the run's `$PARAMETER` values
    run_id: str
    run_date: dt.date

    def expand(self, tables):
        fn = ValidateRecordsFn(record=self.record, schema=self.schema, suites=self.suites, params=self.params, run_id=self.run_id, run_date=self.run_date)
        return tables | "Validate" >> beam.ParDo(fn).with_output_types(pa.Table, **{quarantine.TAG: pa.Table}, results=Partial).with_outputs(
            quarantine.TAG, "results", main="valid"
        )


def _combine(element: tuple[tuple[str, str, str], Iterable[dict]], params: dict) -> dict:
    (source, _, _), parts = element
    parts = sorted(parts, key=lambda p: (p["_rows"], p["unexpected_count"]))  # any order gives the same row
    return combine_results(parts, params=params.get(source, {}))


@dataclasses.dataclass(kw_only=True)
class CombineDqResults(beam.PTransform):
    """Partial results keyed by (source, suite, expectation) -> one dq_results row (a dict) each.

    Example:
        rows = checked.results | "CombineDqResults" >> CombineDqResults(params={})
    """

    params: dict  # source -> the run's `$PARAMETER` values

    def expand(self, partials):
        return (
            partials
            | "GroupByExpectation" >> beam.GroupByKey()
            | "CombineBatches" >> beam.Map(_combine, self.params)
        )
