"""Drop stock events whose event_id was already applied: `DropRepeatedEvents` (state per id live, a columnar pass per bucket on replay).

A repeat leaves as a `duplicate_event` quarantine row with its raw payload, so an event counts
once however often the bus delivers it. (The nightly batch's de-dup, over all of a run's files
at once, is `transforms.dedup.DedupEvents`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.coders import BooleanCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from invrecon.schemas import MOVEMENT
from invrecon.transforms.stream.batches import ArrowBatch, as_frame, merge_in_arrival_order, split_by_id_bucket
from invrecon.transforms.stream.params import ARRIVAL, EXTRA_COLUMNS, MICROS, MOVEMENTS_TAG, QUARANTINE_TAG, RAW, TS, WM, StreamParams
from invrecon.transforms.stream.quarantine import quarantine_frame

__all__ = ["DropRepeatedEvents", "drop_repeats"]

# A movement row between the live de-dup steps: the batch's columns, occurred_at as epoch µs.
_ROW_COLUMNS = (*MOVEMENT.names, *EXTRA_COLUMNS)
_ROW_SCHEMA = {
    **{f.name: pl.Int64 if f.name == "occurred_at" else pl.from_arrow(pa.array([], f.type)).dtype for f in MOVEMENT},
    RAW: pl.String, WM: pl.Int64, TS: pl.Int64, ARRIVAL: pl.Int64,
}


def drop_repeats(df: pl.DataFrame, params: StreamParams) -> tuple[pl.DataFrame, pa.Table | None]:
    """(first occurrence of each event_id, in order; quarantine rows of the repeats or None)."""
    first = pl.col("event_id").is_first_distinct()
    kept, repeats = df.filter(first), df.filter(~first)
    return kept, (_duplicates_quarantine(repeats, params) if repeats.height else None)


def _duplicates_quarantine(repeats: pl.DataFrame, params: StreamParams) -> pa.Table:
    return quarantine_frame(
        repeats, code="duplicate_event", run_id=params.run_id, source=params.source, when=pl.col(TS),
        reason=pl.format("{}: {}: event_id {} was already applied; counted once", pl.col("file"), pl.col("locator"), pl.col("event_id")),
    ).to_arrow()


class _DropRepeatsFn(beam.DoFn):
    """A bounded replay's de-dup: a bucket of event_id arrives whole, in arrival order, once."""

    def __init__(self, params: StreamParams):
        self.params = params
        self.kept = Metrics.counter(self.__class__, "events_kept")
        self.dups = Metrics.counter(self.__class__, "duplicates_quarantined")

    def process(self, element: tuple[int, pl.DataFrame]) -> Iterator[Any]:
        kept, repeats = drop_repeats(element[1], self.params)
        self.kept.inc(kept.height)
        if kept.height:  # a frame: the gate, fused with this step, reads it as it is
            yield kept
        if repeats is not None:
            self.dups.inc(repeats.num_rows)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, repeats)


def _rows_by_event_id(table: pa.Table) -> Iterator[tuple[str, tuple]]:
    """A movement batch as (event_id, row) pairs: the key of the live de-dup's state."""
    df = as_frame(table).select(_ROW_COLUMNS).with_columns(pl.col("occurred_at").dt.epoch("us"))
    at = _ROW_COLUMNS.index("event_id")
    for row in df.iter_rows():
        yield row[at], row


class _DedupPerIdFn(beam.DoFn):
    """A live stream's de-dup: state per event_id, so each event costs one point lookup.

    The first movement of an id to reach this step is passed on, and the id is remembered until
    the watermark passes its occurred_at + TTL (rounded up to a window boundary, so timers fire in
    batches); a repeat before then is passed to the `quarantine` output, as a row too.

    Example (TTL 2 h, windows 15 min): d1 at 10:02 is kept and remembered until 12:02, forgotten
    when the watermark passes 12:15; a repeat of d1 at 10:17, in another window, is quarantined
    as duplicate_event, so d1 counts once.
    """

    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRE = TimerSpec("expire", beam.TimeDomain.WATERMARK)

    def __init__(self, params: StreamParams):
        self.params = params
        self.kept = Metrics.counter(self.__class__, "events_kept")
        self.dups = Metrics.counter(self.__class__, "duplicates_quarantined")

    def process(self, element: tuple[str, tuple], seen=beam.DoFn.StateParam(SEEN), expire=beam.DoFn.TimerParam(EXPIRE)) -> Iterator[Any]:
        _, row = element
        if seen.read() is not None:
            self.dups.inc()
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, row)
            return
        size = self.params.window_seconds * MICROS
        forget_at = -(-(row[_ROW_COLUMNS.index(TS)] + self.params.ttl_seconds * MICROS) // size) * size
        seen.write(True)
        expire.set(Timestamp(micros=forget_at))
        self.kept.inc()
        yield row

    @on_timer(EXPIRE)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)) -> None:
        seen.clear()


def _rows_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of `_rows_by_event_id` as a movement frame again."""
    df = pl.DataFrame(rows, schema=_ROW_SCHEMA, orient="row")
    return df.with_columns(pl.from_epoch("occurred_at", time_unit="us").dt.replace_time_zone("UTC"))


class _RebatchRowsFn(beam.DoFn):
    """Gather a bundle's rows (per window) into one frame again, stamped at its earliest row.

    `quarantine=True`: the rows are repeats, and leave as duplicate_event quarantine rows.
    """

    def __init__(self, params: StreamParams, *, quarantine: bool = False):
        self.params = params
        self.quarantine = quarantine

    def start_bundle(self) -> None:
        self.buffer: dict[Any, list[tuple[tuple, Timestamp]]] = {}

    def process(self, row: tuple, ts=beam.DoFn.TimestampParam, win=beam.DoFn.WindowParam) -> None:
        self.buffer.setdefault(win, []).append((row, ts))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        buffered, self.buffer = self.buffer, {}
        for win, items in buffered.items():
            df = _rows_frame([r for r, _ in items])
            value = _duplicates_quarantine(df, self.params) if self.quarantine else df
            yield WindowedValue(value, min(t for _, t in items), (win,))


@dataclasses.dataclass(kw_only=True)
class DropRepeatedEvents(beam.PTransform):
    """De-duplicate movement tables by event_id; repeats leave as `duplicate_event` quarantine.

    A live stream keeps state per event_id (`_DedupPerIdFn`: one point lookup per event, state
    that grows with the ids inside the TTL, not with what a batch must read); a bounded replay
    groups each hash bucket of event_id whole and drops repeats in one columnar step. The kept
    movements leave as polars frames: the gate runs fused with this step and reads them without a
    conversion (a frame crosses a boundary as Arrow IPC, `TableCoder`).
    """

    params: StreamParams
    bounded: bool = False

    def expand(self, movements):
        movements = movements | "GlobalWindowEvents" >> beam.WindowInto(GlobalWindows())
        if self.bounded:
            return (
                movements
                | "KeyByIdBucket" >> beam.FlatMap(split_by_id_bucket, buckets=self.params.gate_shards).with_output_types(tuple[int, ArrowBatch])
                | "GroupIdBuckets" >> beam.GroupByKey()
                | "MergeIdBatches" >> beam.Map(merge_in_arrival_order).with_output_types(tuple[int, pl.DataFrame])
                | "DropRepeats" >> beam.ParDo(_DropRepeatsFn(self.params))
                .with_output_types(pl.DataFrame, **{QUARANTINE_TAG: pa.Table}).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
            )
        rows = (
            movements
            | "KeyByEventId" >> beam.FlatMap(_rows_by_event_id).with_output_types(tuple[str, tuple])
            | "DropRepeats" >> beam.ParDo(_DedupPerIdFn(self.params)).with_output_types(tuple, **{QUARANTINE_TAG: tuple})
            .with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
        )
        return {
            MOVEMENTS_TAG: rows[MOVEMENTS_TAG] | "RebatchKept" >> beam.ParDo(_RebatchRowsFn(self.params)).with_output_types(pl.DataFrame),
            QUARANTINE_TAG: rows[QUARANTINE_TAG] | "RebatchRepeats" >> beam.ParDo(_RebatchRowsFn(self.params, quarantine=True)).with_output_types(pa.Table),
        }
