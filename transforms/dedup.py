"""De-duplicate the batch's movements by event_id: the first occurrence is kept, repeats are quarantined.

Every copy of an event_id lands in the same hash bucket of `event_id` (`transforms.buckets`), so
one bucket at a time sees all of them. The first is the one read first: by file, then by the
line number of its locator. (The stream's de-duplication, with state across windows, is
`transforms.stream.dedup`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics

from invrecon.schemas import MOVEMENT, QUARANTINE
from invrecon.transforms import quarantine
from invrecon.transforms.buckets import Bucketed, ShuffleBuckets, bucket_tables, concat_tables, split_by_bucket
from invrecon.transforms.coders import TableCoder  # noqa: F401 - registers the coder of pa.Table elements

__all__ = ["DedupEvents", "DedupEventsFn"]


def _line_no(locator: pl.Expr) -> pl.Expr:
    """The first number of a locator (`line 12`, `row 3`): the order of records within a file."""
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
            yield beam.pvalue.TaggedOutput(quarantine.TAG, q.to_arrow().cast(QUARANTINE))


@dataclasses.dataclass(kw_only=True)
class DedupEvents(beam.PTransform):
    """De-duplicate movements by event_id over a hash-bucket shuffle.

    Returns outputs `movements` (first occurrences) and `quarantine` (`duplicate_event` rows).

    Example:
        deduped = movements | "DedupEvents" >> DedupEvents(buckets=32, run_id=run_id)
        deduped.movements, deduped.quarantine
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
            | "GroupEventBuckets" >> ShuffleBuckets(spill=self.spill)
            | "KeepFirstOccurrence" >> beam.ParDo(DedupEventsFn(self.run_id)).with_output_types(pa.Table, **{quarantine.TAG: pa.Table}).with_outputs(quarantine.TAG, main="movements")
        )
