"""Decode and canonicalize raw payloads with the nightly batch's own kernels: `CanonicalizeEvents`.

    RawEvent (a message) ─BatchPayloads─▶ RawChunk ◀─ read_event_chunks (a replayed file)
      ──CanonicalizeChunks (decode_event_texts + canonical_events_frame)──▶
      movements (main), availability figures, quarantine

Ids, locations, units, signs and reason codes mean exactly what they mean in the batch
(`transforms.readers.events.decode_event_texts`, `canonical_events_frame`); a payload that does not
decode or canonicalize leaves through `quarantine` with its raw text and the batch's code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from invrecon.schemas import MOVEMENT
from invrecon.transforms.canonical import parse_timestamps
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.readers.events import EVENT_CHUNK, LineLocator, canonical_events_frame, decode_event_texts
from invrecon.transforms.stream.batches import min_time
from invrecon.transforms.stream.params import (
    ARRIVAL,
    AVAILABILITY_EVENT,
    AVAILABILITY_TAG,
    EXTRA_COLUMNS,
    MOVEMENTS_TAG,
    NO_TIME,
    QUARANTINE_TAG,
    RAW,
    TS,
    WM,
    CrosswalkFiles,
    StreamParams,
)
from invrecon.transforms.stream.quarantine import empty_quarantine, utc_date_expr
from invrecon.transforms.stream.raw import RawChunk, RawEvent
from invrecon.transforms.stream.replay import clock_list

__all__ = ["CanonicalizeEvents", "canonicalize_chunk", "decode_chunk"]

_PARSED_COLUMNS = ("event_id", "event_type", "occurred_at", "system", "location", "id_type", "item_id", "qty", "uom",
                   "reference", "counterparty_location", "_locator", "_raw")


def _chunk_series(chunk: RawChunk) -> tuple[pl.Series, pl.Series]:
    """(texts, numbers) of a chunk as polars Series, whether it holds Series or lists."""
    texts, numbers = chunk.texts, chunk.numbers
    return (
        texts if isinstance(texts, pl.Series) else pl.Series("t", texts, dtype=pl.String),
        numbers if isinstance(numbers, pl.Series) else pl.Series("n", numbers, dtype=pl.Int64),
    )


def decode_chunk(chunk: RawChunk) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode a chunk of payloads: (parsed events with `_seq`, rejected `(_seq, code, reason)`).

    The batch's own decoder (`decode_event_texts`: columnar, a broken line halves its run until
    it stands alone); reasons name the file and the line (or message).
    """
    texts, numbers = _chunk_series(chunk)
    locator = chunk.locators.__getitem__ if chunk.locators else LineLocator(numbers)
    events, rejected = decode_event_texts(texts, locator)
    where = f"{chunk.file}: " if chunk.file else ""
    rejects = pl.DataFrame([(i, code, where + reason) for i, code, reason in rejected], schema={"_seq": pl.Int64, "code": pl.String, "reason": pl.String}, orient="row")
    return events.select(*_PARSED_COLUMNS, pl.col("_pos").alias("_seq")), rejects


def _clock_series(wms, n: int) -> pl.Series:
    if isinstance(wms, np.ndarray):
        return pl.Series(WM, wms, dtype=pl.Int64).replace(NO_TIME, None)
    return pl.Series(WM, clock_list(wms, n), dtype=pl.Int64)


def _chunk_info(chunk: RawChunk) -> pl.DataFrame:
    """Per payload of a chunk: `_seq` (its place), `_n`, raw text, replay clock, arrival, `_loc`."""
    texts, numbers = _chunk_series(chunk)
    n = len(texts)
    return pl.DataFrame(
        {
            "_seq": pl.Series(range(n), dtype=pl.Int64),
            "_n": numbers,
            RAW: texts,
            WM: _clock_series(chunk.replay_watermarks, n),
            ARRIVAL: numbers + chunk.arrival_base,
        }
    ).with_columns((pl.Series(chunk.locators, dtype=pl.String) if chunk.locators else pl.format("line {}", "_n")).alias("_loc"))


def _decode_rejects(rejected: pl.DataFrame, info: pl.DataFrame, *, chunk: RawChunk, source: str, run_id: str) -> pl.DataFrame:
    """Quarantine rows (+ `_seq`) of the payloads that did not decode."""
    return rejected.join(info, on="_seq", how="left").select(
        pl.lit(run_id).alias("run_id"), pl.lit(source).alias("source"), pl.lit(chunk.file, dtype=pl.String).alias("file"),
        pl.col("_loc").alias("locator"), pl.col("code").alias("reason_code"), pl.col("reason"), pl.col(RAW).alias("raw"),
        pl.lit("unknown").alias("_date"), pl.col("_seq"),
    )


def _canonical_rejects(q: pl.DataFrame, info: pl.DataFrame, parsed: pl.DataFrame, *, chunk: RawChunk, spec: SourceSpec, run_id: str) -> pl.DataFrame:
    """Quarantine rows (+ `_seq`) of the canonical kernel's rejects; reasons name the file and line."""
    uri = chunk.file or ""
    q = q.with_columns(pl.col("locator").cast(pl.Int64).alias("_seq")).join(info.select("_seq", "_loc"), on="_seq", how="left")
    q = q.join(parsed.select("_seq", "occurred_at"), on="_seq", how="left")
    reason = pl.col("reason")
    if uri:
        reason = pl.when(reason.is_null() | (reason == "") | reason.str.starts_with(uri)).then(reason).otherwise(pl.format(f"{uri}: {{}}: {{}}", pl.col("_loc"), reason))
    return q.select(
        pl.lit(run_id).alias("run_id"), pl.col("source"), pl.lit(chunk.file, dtype=pl.String).alias("file"), pl.col("_loc").alias("locator"),
        pl.col("reason_code"), reason.alias("reason"), pl.col("raw"),
        utc_date_expr(parse_timestamps(pl.col("occurred_at"), timezone=spec.timezone).dt.epoch("us")).alias("_date"), pl.col("_seq"),
    )


def canonicalize_chunk(chunk: RawChunk, *, spec: SourceSpec, crosswalks, run_id: str) -> tuple[pa.Table, pa.Table, pa.Table]:
    """One chunk -> (movements, availability figures, quarantine), in arrival order.

    Movements and figures have the MOVEMENT columns plus `_raw`, `_wm`, `_ts` (event time, µs)
    and `_arrival`; quarantine has the QUARANTINE columns plus `_date`. Canonicalization is the
    batch's own `canonical_events_frame`, so ids, locations, units, signs and codes mean exactly
    what they mean in the nightly batch.
    """
    info = _chunk_info(chunk)
    parsed, rejected = decode_chunk(chunk)
    # The canonical kernel reports rows by `_locator`: a unique one (the position in the chunk)
    # keeps redelivered messages with the same id apart.
    parsed = parsed.with_columns(
        pl.col("_seq").cast(pl.String).alias("_locator"),
        (pl.col("event_type") == AVAILABILITY_EVENT).alias("_avail"),
        pl.when(pl.col("event_type") == AVAILABILITY_EVENT).then(pl.lit("count")).otherwise(pl.col("event_type")).alias("event_type"),
    )
    result = canonical_events_frame(parsed, uri=chunk.file or "", spec=spec, crosswalks=crosswalks)
    moved = (
        pl.from_arrow(result.movements)
        .with_columns(pl.col("locator").cast(pl.Int64).alias("_seq"))
        .join(info, on="_seq", how="left")
        .join(parsed.select("_seq", "_avail"), on="_seq", how="left")
        .sort("_seq")
        .with_columns(pl.col("_loc").alias("locator"), pl.lit(chunk.file, dtype=pl.String).alias("file"), pl.col("occurred_at").dt.epoch("us").alias(TS))
    )
    columns = [*MOVEMENT.names, *EXTRA_COLUMNS]
    movements = moved.filter(~pl.col("_avail")).select(columns)
    figures = moved.filter(pl.col("_avail")).select(columns)
    parts = []
    if rejected.height:
        parts.append(_decode_rejects(rejected, info, chunk=chunk, source=spec.name, run_id=run_id))
    q = pl.from_arrow(result.quarantine)
    if q.height:
        parts.append(_canonical_rejects(q, info, parsed, chunk=chunk, spec=spec, run_id=run_id))
    quarantine = pl.concat(parts, how="vertical_relaxed").sort("_seq").drop("_seq") if parts else empty_quarantine()
    return movements.to_arrow(), figures.to_arrow(), quarantine.to_arrow()


class _BatchPayloadsFn(beam.DoFn):
    """Gather the messages of a bundle into RawChunks (per file); pass RawChunks through.

    A bundle is what the runner delivers at once, so the batch adds no latency of its own.
    """

    # Messages per chunk: amortizes polars' per-call cost and bounds a bundle's memory.
    MAX_BUFFER = EVENT_CHUNK

    def __init__(self) -> None:
        self._base = 0

    def start_bundle(self) -> None:
        self.buffer: dict[tuple[str | None, Any], list[tuple[RawEvent, Timestamp]]] = {}
        self.count = 0

    def process(self, raw, ts=beam.DoFn.TimestampParam, win=beam.DoFn.WindowParam) -> Iterator[Any]:
        if isinstance(raw, RawChunk):
            yield raw
            return
        self.buffer.setdefault((raw.file, win), []).append((raw, ts))
        self.count += 1
        if self.count >= self.MAX_BUFFER:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[WindowedValue]:
        buffered, self.buffer, self.count = self.buffer, {}, 0
        for (file, win), items in buffered.items():
            # Arrival ordinals of this worker: milliseconds, then the message's place in the chunk.
            self._base = max(int(time.time() * 1000) << 20, self._base + (1 << 20))
            chunk = RawChunk(
                [r.text for r, _ in items], file, list(range(len(items))), [r.locator for r, _ in items],
                [r.replay_watermark for r, _ in items], self._base,
            )
            yield WindowedValue(chunk, min(t for _, t in items), (win,))


class _CanonicalizeFn(beam.DoFn):
    """Canonicalize each RawChunk in one columnar call; movements are stamped at their earliest."""

    def __init__(self, *, params: StreamParams, spec: SourceSpec, crosswalks: CrosswalkFiles):
        self.params = params
        self.spec = spec
        self.crosswalk_files = crosswalks
        self.read = Metrics.counter(self.__class__, "events_read")
        self.written = Metrics.counter(self.__class__, "movements_canonicalized")
        self.reported = Metrics.counter(self.__class__, "figures_canonicalized")
        self.rejected = Metrics.counter(self.__class__, "events_quarantined")

    def setup(self) -> None:
        self.crosswalks = self.crosswalk_files.load()

    def process(self, chunk: RawChunk) -> Iterator[Any]:
        movements, figures, quarantine = canonicalize_chunk(chunk, spec=self.spec, crosswalks=self.crosswalks, run_id=self.params.run_id)
        self.read.inc(len(chunk.texts))
        if movements.num_rows:
            self.written.inc(movements.num_rows)
            yield TimestampedValue(movements, min_time(movements))
        if figures.num_rows:
            self.reported.inc(figures.num_rows)
            yield beam.pvalue.TaggedOutput(AVAILABILITY_TAG, TimestampedValue(figures, min_time(figures)))
        if quarantine.num_rows:
            self.rejected.inc(quarantine.num_rows)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine)


@dataclasses.dataclass(kw_only=True)
class CanonicalizeEvents(beam.PTransform):
    """RawEvent / RawChunk -> canonical movement tables stamped at occurred_at (+ figures, quarantine).

    Messages are gathered per bundle; decoding is columnar (`decode_chunk`) with a per-line
    fallback, and canonicalization is the batch's own kernel (`canonical_events_frame`).
    """

    params: StreamParams
    spec: SourceSpec
    crosswalks: CrosswalkFiles

    def expand(self, raw):
        canon = (
            raw
            | "BatchPayloads" >> beam.ParDo(_BatchPayloadsFn()).with_output_types(RawChunk)
            | "CanonicalizeChunks" >> beam.ParDo(_CanonicalizeFn(params=self.params, spec=self.spec, crosswalks=self.crosswalks))
            .with_output_types(pa.Table, **{QUARANTINE_TAG: pa.Table, AVAILABILITY_TAG: pa.Table})
            .with_outputs(QUARANTINE_TAG, AVAILABILITY_TAG, main=MOVEMENTS_TAG)
        )
        return {MOVEMENTS_TAG: canon[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: canon[QUARANTINE_TAG]}
