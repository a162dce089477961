"""The streaming stock-event transforms behind `invrecon stream` (DESIGN.md §2, §5, §8).

Raw event payloads (JSON text from Pub/Sub, Kafka or a replayed JSON Lines file) become canonical
movements, a running position per (sku, location), windowed position changes and alerts. The hot
path is columnar: events travel as `pyarrow.Table` micro-batches, and the keyed steps work on a
stable hash bucket of events at once instead of one event at a time (but for a live stream's
de-dup, whose state is per event_id, so that each event costs a point lookup):

    RawEvent (a message) ─BatchPayloads─▶ RawChunk ◀─ read_event_chunks (a replayed file)
      ──CanonicalizeChunks (decode_event_texts + canonical_events_frame, the batch's kernels)──▶
      ──DedupEvents (live: state + timer per event_id; replay: each bucket of event_id whole)──▶
      ──GateLateEvents (per position bucket and window: beyond allowed lateness ─▶ `late_event`)──▶
      ──RunningPosition (bucket of sku/location: positions in state, seeded from the snapshot)──▶
      ──WindowPositionChanges (fixed windows, early + late panes, per bucket)──▶ position changes

Every rejected payload leaves through the `quarantine` output with its raw text and a reason code
(`malformed_event`, `missing_field`, `bad_timestamp`, the canonical codes of
`transforms.sources.canonical_events_frame`, `duplicate_event`, `late_event`), so for any input
read = archived movements + reported figures + quarantined.

Lateness, worked example (window 15 min, allowed lateness 10 min): a sale at 10:05 belongs to
window [10:00, 10:15); that window accepts data until the watermark passes 10:25. Arriving while
the watermark is at 10:20 it is applied and the window's figure is re-emitted in a LATE pane;
arriving at watermark 10:30 it is quarantined as `late_event` (and the nightly batch applies it).
Beam itself silently drops data behind a window's expiry, so the gate decides with Beam's own
watermark instead of guessing one: each batch of a bucket's events of one window is moved forward
in event time to the instant that window expires (always allowed) and grouped with an early
trigger on every element; a pane Beam marks LATE is exactly "arrived after the window expired".
The batch then gets its events' time back; being held behind that expiry instant, it can never be
dropped by the windows downstream.

A bounded replay (`bounded=True`) runs the same steps on a batch runner, where the watermark only
moves at the end: it gathers each bucket's events into one batch (in arrival order) before the
keyed steps (so the de-dup needs no state), sets no expiry timers (its state ends with the run)
and gates by the replay clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import pickle
import re
import time
import uuid
import zlib
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Optional

import apache_beam as beam
import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.coders import BooleanCoder, PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from invrecon.schemas import ALERTS, MOVEMENT, POSITION, QUARANTINE
from invrecon.transforms.coders import TableCoder, ipc_bytes, read_ipc
from invrecon.transforms.canonical import load_crosswalks, load_items, parse_timestamps
from invrecon.transforms.reconcile import Tolerance, _tolerance_exprs
from invrecon.transforms.sources import (
    EVENT_CHUNK,
    SourceSpec,
    canonical_events_frame,
    LineLocator,
    decode_event_texts,
    iter_line_chunks,
    parse_event,
)

__all__ = [
    "ALERTS_TAG",
    "AVAILABILITY_TAG",
    "MOVEMENTS_TAG",
    "POSITION_CHANGES",
    "QUARANTINE_TAG",
    "UPDATES_TAG",
    "CanonicalizeEvents",
    "DedupEvents",
    "GateLateEvents",
    "PositionBook",
    "RawChunk",
    "RawEvent",
    "RunningPosition",
    "StockEvents",
    "StreamParams",
    "WindowPositionChanges",
    "WriteParquetFiles",
    "apply_movements",
    "as_position_row",
    "as_position_table",
    "canonicalize_chunk",
    "decode_chunk",
    "event_time_micros",
    "parse_raw_event",
    "quarantine_row",
    "read_event_chunks",
    "read_event_lines",
    "seed_element",
    "stable_bucket",
    "window_expiry",
]

MOVEMENTS_TAG = "movements"
AVAILABILITY_TAG = "availability"
QUARANTINE_TAG = "quarantine"
ALERTS_TAG = "alerts"
UPDATES_TAG = "updates"

# A commerce channel publishes its available-to-sell on the event bus as
# {"event_type": "availability", ...}: an absolute figure, canonicalized like a count.
AVAILABILITY_EVENT = "availability"

MICROS = 1_000_000

# Columns a movement batch carries beside MOVEMENT until it is archived: the raw payload (for
# quarantine), the replay clock when it arrived, its event time in µs, and its arrival ordinal.
RAW, WM, TS, ARRIVAL = "_raw", "_wm", "_ts", "_arrival"
EXTRA_COLUMNS = (RAW, WM, TS, ARRIVAL)

# Stand-in for "no base yet" in the position arithmetic: earlier than any event.
_NO_TIME = -(2**62)

# One row per (window, sku, location) pane of position changes. Panes accumulate: the latest
# pane (highest pane_index) of a window is its current figure; LATE panes revise it.
POSITION_CHANGES = pa.schema(
    [
        pa.field("window_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("window_end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("on_hand_change", pa.int64(), nullable=False),
        pa.field("reserved_change", pa.int64(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("on_hand_after", pa.int64()),  # running position after the window's latest event
        pa.field("reserved_after", pa.int64()),
        pa.field("seeded", pa.bool_()),  # the position started from a published snapshot
        pa.field("pane_timing", pa.string(), nullable=False),  # EARLY | ON_TIME | LATE | UNKNOWN
        pa.field("pane_index", pa.int64(), nullable=False),
        pa.field("run_id", pa.string()),
    ]
)

_TIMING = {
    PaneInfoTiming.EARLY: "EARLY",
    PaneInfoTiming.ON_TIME: "ON_TIME",
    PaneInfoTiming.LATE: "LATE",
    PaneInfoTiming.UNKNOWN: "UNKNOWN",
}


@dataclasses.dataclass(frozen=True)
class StreamParams:
    """The stream's windowing, lateness, de-duplication and alert settings (validated).

    Attributes:
      window_minutes: fixed window size of the position changes.
      allowed_lateness_minutes: how long after a window's end its events are still applied.
      early_firing_seconds: processing-time delay of the early (speculative) panes.
      dedup_ttl_hours: how long an event_id is remembered; also how long a too-late event can
        still be told apart from nothing (later than that, Beam drops it unseen).
      record_system: system of record (DESIGN.md §4); its figures seed the position.
      alert_systems: systems whose reported figures (store counts, availability) are compared.
      tolerances: first-match tolerance rules of DESIGN.md §6.3 for the divergence alerts.
      min_alert_abs: a floor (in units) under those tolerances, so that a live stream need not
        page for a one-unit slip the nightly batch will classify anyway.
    """

    window_minutes: float = 15
    allowed_lateness_minutes: float = 60
    early_firing_seconds: float = 30
    dedup_ttl_hours: float = 48
    record_system: str = "erp"
    timezone: str = "UTC"
    source: str = "stock_events"
    alert_systems: tuple[str, ...] = ("store", "commerce")
    tolerances: tuple[Tolerance, ...] = ()
    min_alert_abs: float = 0
    run_id: str = ""
    # Hash buckets of every keyed step (de-dup, gate, position, changes): the parallelism of the
    # stream, and the batch size of each step (fewer buckets, bigger batches).
    gate_shards: int = 16

    def __post_init__(self) -> None:
        for name in ("window_minutes", "early_firing_seconds", "dedup_ttl_hours"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        if not self.allowed_lateness_minutes >= 0:
            raise ValueError(f"`allowed_lateness_minutes` must be >= 0, got {self.allowed_lateness_minutes!r}")
        if self.window_seconds % 1 or self.lateness_seconds % 1:
            raise ValueError("`window_minutes` and `allowed_lateness_minutes` must be whole seconds")
        if self.dedup_ttl_hours * 3600 < self.window_seconds + self.lateness_seconds:
            raise ValueError(
                "`dedup_ttl_hours` must cover at least one window plus the allowed lateness "
                f"({(self.window_seconds + self.lateness_seconds) / 3600:g} h)"
            )
        if not self.min_alert_abs >= 0:
            raise ValueError(f"`min_alert_abs` must be >= 0, got {self.min_alert_abs!r}")
        if self.gate_shards <= 0:
            raise ValueError("`gate_shards` must be > 0")
        zoneinfo.ZoneInfo(self.timezone)

    @property
    def window_seconds(self) -> int:
        return int(round(self.window_minutes * 60))

    @property
    def lateness_seconds(self) -> int:
        return int(round(self.allowed_lateness_minutes * 60))

    @property
    def ttl_seconds(self) -> int:
        return int(round(self.dedup_ttl_hours * 3600))


class RawEvent(NamedTuple):
    """One payload as read from the bus, before parsing.

    `replay_watermark` (epoch µs) is set by the file replay only: the watermark the live bus would
    have had when the line was published (the latest `published_at` so far). A live source leaves
    it None and the runner's watermark decides alone.
    """

    text: str
    file: str | None
    locator: str
    replay_watermark: int | None = None


# --- pure functions ---------------------------------------------------------------------------


def event_time_micros(value: str, *, timezone: str) -> int | None:
    """Epoch microseconds of an ISO 8601 timestamp; one without an offset is in `timezone`.

    Example:
        >>> event_time_micros("2026-11-30T12:00:00-06:00", timezone="UTC")
        1796061600000000
        >>> event_time_micros("yesterday", timezone="UTC") is None
        True
    """
    try:
        ts = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * MICROS + delta.microseconds


def window_expiry(ts_micros: int, *, window_seconds: int, lateness_seconds: int) -> tuple[int, int]:
    """(window end, expiry) in epoch µs of the fixed window holding `ts_micros`.

    Example (15 min windows, 10 min lateness; 10:05 -> window ends 10:15, expires 10:25):
        >>> end, exp = window_expiry(36_300 * MICROS, window_seconds=900, lateness_seconds=600)
        >>> end // MICROS, exp // MICROS
        (36900, 37500)
    """
    size = window_seconds * MICROS
    end = (ts_micros // size + 1) * size
    return end, end + lateness_seconds * MICROS


def quarantine_row(*, source: str, file: str | None, locator: str, code: str, reason: str, raw: str | None, run_id: str = "", when: int | None = None) -> dict:
    """One QUARANTINE row as a dict; `_date` (UTC event date or `unknown`) picks its partition."""
    day = dt.datetime.fromtimestamp(when / MICROS, dt.timezone.utc).date().isoformat() if when is not None else "unknown"
    return {"run_id": run_id, "source": source, "file": file, "locator": locator, "reason_code": code, "reason": reason, "raw": raw, "_date": day}


def parse_raw_event(raw: RawEvent, *, timezone: str, source: str) -> tuple[dict | None, int | None, dict | None]:
    """Parse one payload: (fields, event time µs, None) or (None, None, quarantine row).

    The event time comes from `occurred_at`; one that does not parse is `bad_timestamp` here,
    because an event without a time cannot be windowed.
    """
    fields, err = parse_event(raw.text, locator=raw.locator)
    if err is not None:
        code, reason = err
        where = f"{raw.file}: " if raw.file else ""
        return None, None, quarantine_row(source=source, file=raw.file, locator=raw.locator, code=code, reason=where + reason, raw=raw.text)
    ts = event_time_micros(fields["occurred_at"], timezone=timezone)
    if ts is None:
        reason = f"{raw.locator}: field occurred_at: {fields['occurred_at']} is not an ISO 8601 timestamp"
        return None, None, quarantine_row(source=source, file=raw.file, locator=raw.locator, code="bad_timestamp", reason=reason, raw=raw.text)
    fields["_file"] = raw.file
    fields["_wm"] = raw.replay_watermark
    return fields, ts, None


class RawChunk(NamedTuple):
    """Raw payloads read together: the unit of the columnar decode.

    A replayed file is read in chunks of `EVENT_CHUNK` lines (`read_event_chunks`); live messages
    are gathered per bundle (`BatchPayloads`). `numbers` are line numbers (or message positions);
    `locators` default to `line <number>`; `replay_watermarks` are the bus clock of each line in a
    replay (None live); a payload's arrival ordinal is `arrival_base + number`. A replay's texts
    and numbers are polars Series (cut by `iter_line_chunks`), a bundle's are lists.
    """

    texts: list[str] | pl.Series
    file: str | None
    numbers: list[int] | pl.Series
    locators: list[str] | None = None
    replay_watermarks: list[int | None] | np.ndarray | None = None  # µs; _NO_TIME or None: no clock
    arrival_base: int = 0


class RawChunkCoder(beam.coders.Coder):
    """Coder of RawChunk: pickled (it rarely crosses a boundary), weighed by its text, not encoded."""

    def encode(self, value: RawChunk) -> bytes:
        return pickle.dumps(tuple(value), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> RawChunk:
        return RawChunk(*pickle.loads(encoded))

    def estimate_size(self, value: RawChunk) -> int:
        texts = value.texts
        size = int(texts.str.len_bytes().sum()) if isinstance(texts, pl.Series) else sum(map(len, texts))
        return size + 16 * len(texts)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return RawChunk


beam.coders.registry.register_coder(RawChunk, RawChunkCoder)


_PUBLISHED = re.compile(r'"published_at"\s*:\s*"([^"]+)"')
_OCCURRED = re.compile(r'"occurred_at"\s*:\s*"([^"]+)"')
# The bus's own timestamp shape, parsed in one pass; anything else takes parse_timestamps.
_ISO_OFFSET = "%Y-%m-%dT%H:%M:%S%.f%:z"


def _field_text(frame: pl.DataFrame, name: str, pattern: re.Pattern, *, rows: pl.Expr | None = None) -> pl.Series:
    """The string value of field `name` in each line of `frame["s"]` (null: none), on `rows` only.

    The shape json.dumps writes (`"name": "`) is found literally, a cheap scan; the lines where
    it is not are searched with `pattern`, which allows any whitespace.
    """
    s = pl.col("s") if rows is None else pl.when(rows).then(pl.col("s"))
    # Split, never slice: polars finds byte offsets but slices characters, so an offset would
    # land elsewhere after any non-ASCII text. The value must close with a quote, as the regex.
    value = frame.select(s.str.splitn(f'"{name}": "', 2).struct.field("field_1").str.splitn('"', 2).alias("v")).unnest("v")
    fast = value.select(pl.when(pl.col("field_1").is_not_null() & (pl.col("field_0") != "")).then(pl.col("field_0"))).to_series()
    missing = fast.is_null()
    if rows is not None:
        missing = missing & frame.select(rows.fill_null(False)).to_series()
    if not missing.any():
        return fast
    slow = frame.select(pl.when(missing).then(pl.col("s")).str.extract(pattern.pattern, 1)).to_series()
    return fast.fill_null(slow)


def _bus_clock(texts: list[str] | pl.Series, *, timezone: str, carry: int | None) -> np.ndarray:
    """Running max (µs) of `published_at` (else `occurred_at`) over the lines, after `carry`.

    `_NO_TIME` stands for "no clock yet".

    Columnar: `_field_text` and polars' timestamp parser do all lines at once; a value that
    parser leaves null is parsed line by line (`event_time_micros`), so the clock is what the
    per-line reader computes.
    """
    frame = pl.DataFrame({"s": pl.Series(texts, dtype=pl.String)})
    v = _field_text(frame, "published_at", _PUBLISHED)
    if v.null_count():  # occurred_at only where there is no published_at
        v = v.fill_null(_field_text(frame, "occurred_at", _OCCURRED, rows=pl.lit(v.is_null())))
    t = v.str.to_datetime(_ISO_OFFSET, strict=False, time_unit="us", time_zone="UTC").dt.epoch("us")
    if (t.is_null() & v.is_not_null()).any():
        t = t.fill_null(pl.select(parse_timestamps(pl.lit(v), timezone=timezone).dt.epoch("us")).to_series())
    if t.null_count() == 0:
        t = t.to_numpy().copy()
    else:
        vals, parsed = v.to_list(), t.to_list()
        t = np.array([p if p is not None else (event_time_micros(x, timezone=timezone) if x is not None else None) for x, p in zip(vals, parsed)], dtype=object)
        t = np.array([_NO_TIME if x is None else x for x in t], dtype=np.int64)
    return np.maximum.accumulate(np.concatenate([[_NO_TIME if carry is None else carry], t]))[1:]


def read_event_chunks(uri: str, *, timezone: str, file_index: int = 0, chunk: int = EVENT_CHUNK) -> Iterator[RawChunk]:
    """Yield the non-blank lines of one JSON Lines file as RawChunks with the replay clock.

    The replay watermark of line n is the latest `published_at` (else `occurred_at`) of lines
    1..n: the file is in publish order, so this is the bus clock when line n arrived. Arrival
    ordinals order files by `file_index`, then lines.
    """
    clock: int | None = None
    base = (file_index + 1) << 40
    with fsspec.open(uri, "rb") as f:
        for numbers, texts in iter_line_chunks(f, chunk=chunk):
            wms = _bus_clock(texts, timezone=timezone, carry=clock)
            clock = int(wms[-1])
            yield RawChunk(texts, uri, numbers, None, wms, base)


def read_event_lines(uri: str, *, timezone: str) -> Iterator[RawEvent]:
    """Yield the non-blank lines of one JSON Lines file as RawEvents with a replay watermark."""
    for c in read_event_chunks(uri, timezone=timezone):
        for text, n, wm in zip(c.texts.to_list(), c.numbers.to_list(), _clock_list(c.replay_watermarks, len(c.texts))):
            yield RawEvent(text, uri, f"line {n}", wm)


def _clock_list(wms, n: int) -> list[int | None]:
    if wms is None:
        return [None] * n
    return [None if x is None or x == _NO_TIME else int(x) for x in (wms.tolist() if isinstance(wms, np.ndarray) else wms)]


def stable_bucket(values: Iterable[str], buckets: int) -> list[int]:
    """Hash bucket of each value: crc32, the same on every worker, process and release.

    Example:
        >>> stable_bucket(["E-1", "E-2"], 16)
        [1, 2]
    """
    return [zlib.crc32(v.encode()) % buckets for v in values]


def _with_key_bucket(df: pl.DataFrame, buckets: int, *, name: str = "_b") -> pl.DataFrame:
    """Add the bucket of (sku, location): hashed once per distinct key, joined to the rows."""
    keys = df.select("sku", "location").unique()
    b = stable_bucket((f"{s}\x1f{loc}" for s, loc in keys.iter_rows()), buckets)
    return df.join(keys.with_columns(pl.Series(name, b, dtype=pl.Int64)), on=["sku", "location"], how="left", maintain_order="left")


def _utc_date(micros: int) -> str:
    return dt.datetime.fromtimestamp(micros / MICROS, dt.timezone.utc).date().isoformat()


def _utc_date_expr(micros: pl.Expr) -> pl.Expr:
    return pl.from_epoch(micros, time_unit="us").dt.date().cast(pl.String).fill_null("unknown")


_QUARANTINE_COLUMNS = (*QUARANTINE.names, "_date")


def _quarantine_frame(df: pl.DataFrame, *, code: str | pl.Expr, reason: pl.Expr, run_id: str, source: str, when: pl.Expr | None = None) -> pl.DataFrame:
    """QUARANTINE rows (+ `_date`, the partition) of rejected movement rows."""
    return df.select(
        pl.lit(run_id).alias("run_id"), pl.lit(source).alias("source"), pl.col("file").cast(pl.String), pl.col("locator"),
        (pl.lit(code) if isinstance(code, str) else code).alias("reason_code"), reason.cast(pl.String).alias("reason"),
        pl.col(RAW).alias("raw"), (_utc_date_expr(when) if when is not None else pl.lit("unknown")).alias("_date"),
    )


def _empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.String for c in _QUARANTINE_COLUMNS})


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
        return pl.Series(WM, wms, dtype=pl.Int64).replace(_NO_TIME, None)
    return pl.Series(WM, _clock_list(wms, n), dtype=pl.Int64)


def canonicalize_chunk(chunk: RawChunk, *, spec: SourceSpec, crosswalks, run_id: str) -> tuple[pa.Table, pa.Table, pa.Table]:
    """One chunk -> (movements, availability figures, quarantine), in arrival order.

    Movements and figures have the MOVEMENT columns plus `_raw`, `_wm`, `_ts` (event time, µs)
    and `_arrival`; quarantine has the QUARANTINE columns plus `_date`. Canonicalization is the
    batch's own `canonical_events_frame`, so ids, locations, units, signs and codes mean exactly
    what they mean in the nightly batch.
    """
    texts, numbers = _chunk_series(chunk)
    n = len(texts)
    info = pl.DataFrame(
        {
            "_seq": pl.Series(range(n), dtype=pl.Int64),
            "_n": numbers,
            RAW: texts,
            WM: _clock_series(chunk.replay_watermarks, n),
            ARRIVAL: numbers + chunk.arrival_base,
        }
    ).with_columns((pl.Series(chunk.locators, dtype=pl.String) if chunk.locators else pl.format("line {}", "_n")).alias("_loc"))
    parsed, rejected = decode_chunk(chunk)
    uri = chunk.file or ""
    # The canonical kernel reports rows by `_locator`: a unique one (the position in the chunk)
    # keeps redelivered messages with the same id apart.
    parsed = parsed.with_columns(
        pl.col("_seq").cast(pl.String).alias("_locator"),
        (pl.col("event_type") == AVAILABILITY_EVENT).alias("_avail"),
        pl.when(pl.col("event_type") == AVAILABILITY_EVENT).then(pl.lit("count")).otherwise(pl.col("event_type")).alias("event_type"),
    )
    result = canonical_events_frame(parsed, uri=uri, spec=spec, crosswalks=crosswalks)
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
        parts.append(rejected.join(info, on="_seq", how="left").select(
            pl.lit(run_id).alias("run_id"), pl.lit(spec.name).alias("source"), pl.lit(chunk.file, dtype=pl.String).alias("file"),
            pl.col("_loc").alias("locator"), pl.col("code").alias("reason_code"), pl.col("reason"), pl.col(RAW).alias("raw"),
            pl.lit("unknown").alias("_date"), pl.col("_seq"),
        ))
    q = pl.from_arrow(result.quarantine)
    if q.height:
        q = q.with_columns(pl.col("locator").cast(pl.Int64).alias("_seq")).join(info.select("_seq", "_loc"), on="_seq", how="left")
        q = q.join(parsed.select("_seq", "occurred_at"), on="_seq", how="left")
        reason = pl.col("reason")
        if uri:
            reason = pl.when(reason.is_null() | (reason == "") | reason.str.starts_with(uri)).then(reason).otherwise(pl.format(f"{uri}: {{}}: {{}}", pl.col("_loc"), reason))
        parts.append(q.select(
            pl.lit(run_id).alias("run_id"), pl.col("source"), pl.lit(chunk.file, dtype=pl.String).alias("file"), pl.col("_loc").alias("locator"),
            pl.col("reason_code"), reason.alias("reason"), pl.col("raw"),
            _utc_date_expr(parse_timestamps(pl.col("occurred_at"), timezone=spec.timezone).dt.epoch("us")).alias("_date"), pl.col("_seq"),
        ))
    quarantine = pl.concat(parts, how="vertical_relaxed").sort("_seq").drop("_seq") if parts else _empty_quarantine()
    return movements.to_arrow(), figures.to_arrow(), quarantine.to_arrow()


def seed_element(row: dict, *, as_of_micros: int) -> tuple[tuple[str, str], tuple[str, dict]]:
    """A published inventory_snapshot row (sku, location, on_hand, reserved) as a RunningPosition input (`transforms.seeds`)."""
    return (row["sku"], row["location"]), ("seed", {"on_hand": row.get("on_hand"), "reserved": row.get("reserved"), "as_of": as_of_micros})


@dataclasses.dataclass
class PositionBook:
    """The running position of one (sku, location), correct under out-of-order events.

    A base (a snapshot seed, or the latest `count`) fixes on_hand at an instant; movements after
    that instant add to it, movements at or before it are already in it (DESIGN.md §6.1: a count
    at an instant includes everything that happened at that instant). Reserved has its own base
    (the seed) and moves by reservation / release. Movements are kept until a newer base makes
    them irrelevant or `compact` folds them in, so a late count still corrects the position.

    Example:
        >>> b = PositionBook()
        >>> b.seed(on_hand=10, reserved=0, as_of=100)
        >>> b.apply(ts=200, qty=-3, reserved_delta=0, is_count=False)   # sale of 3
        (-3, 0)
        >>> b.apply(ts=300, qty=5, reserved_delta=0, is_count=True)     # count finds 5
        (-2, 0)
        >>> b.apply(ts=250, qty=-1, reserved_delta=0, is_count=False)   # late sale, before the count
        (0, 0)
        >>> b.on_hand, b.seeded
        (5, True)
    """

    base_on_hand: int = 0
    base_on_hand_at: int | None = None
    base_reserved: int = 0
    base_reserved_at: int | None = None
    pending: list = dataclasses.field(default_factory=list)  # (ts, qty, reserved_delta)
    seeded: bool = False
    # Running sums of the pending movements after each base: O(1) per ordinary movement.
    _after_on_hand: int = 0
    _after_reserved: int = 0

    @property
    def on_hand(self) -> int:
        return self.base_on_hand + self._after_on_hand

    @property
    def reserved(self) -> int:
        return self.base_reserved + self._after_reserved

    @property
    def has_base(self) -> bool:
        return self.base_on_hand_at is not None

    def seed(self, *, on_hand: int | None, reserved: int | None, as_of: int) -> None:
        """Start from a snapshot figure taken at `as_of` (only a newer base replaces a base)."""
        if on_hand is not None and (self.base_on_hand_at is None or as_of >= self.base_on_hand_at):
            self.base_on_hand, self.base_on_hand_at = int(on_hand), as_of
            self.seeded = True
        if self.base_reserved_at is None or as_of >= self.base_reserved_at:
            self.base_reserved, self.base_reserved_at = int(reserved or 0), as_of
        self._rebase()

    def apply(self, *, ts: int, qty: int, reserved_delta: int, is_count: bool) -> tuple[int, int]:
        """Apply one movement; return its effect (on_hand change, reserved change) right now."""
        before_oh, before_r = self.on_hand, self.reserved
        if is_count:
            if self.base_on_hand_at is None or ts > self.base_on_hand_at:
                self.base_on_hand, self.base_on_hand_at = int(qty), ts
            if reserved_delta:
                self.pending.append((ts, 0, int(reserved_delta)))
            self._rebase()
        else:
            self.pending.append((ts, int(qty), int(reserved_delta)))
            if self.base_on_hand_at is None or ts > self.base_on_hand_at:
                self._after_on_hand += int(qty)
            if self.base_reserved_at is None or ts > self.base_reserved_at:
                self._after_reserved += int(reserved_delta)
        return self.on_hand - before_oh, self.reserved - before_r

    def compact(self, *, before: int) -> None:
        """Fold movements older than `before` into the bases.

        Safe once no base (count) older than `before` can still arrive: every later base is newer
        than all of them and would supersede them together.
        """
        old = [p for p in self.pending if p[0] < before]
        if not old:
            return
        oh_at, r_at = self.base_on_hand_at, self.base_reserved_at
        self.base_on_hand += sum(q for t, q, _ in old if oh_at is None or t > oh_at)
        self.base_reserved += sum(r for t, _, r in old if r_at is None or t > r_at)
        self.pending = [p for p in self.pending if p[0] >= before]
        self._rebase()

    def _rebase(self) -> None:
        """Drop movements every base covers and recompute the sums after each base."""
        oh_at, r_at = self.base_on_hand_at, self.base_reserved_at
        if oh_at is not None and r_at is not None:
            floor = min(oh_at, r_at)
            self.pending = [p for p in self.pending if p[0] > floor]
        self._after_on_hand = sum(q for t, q, _ in self.pending if oh_at is None or t > oh_at)
        self._after_reserved = sum(r for t, _, r in self.pending if r_at is None or t > r_at)


# --- running position, columnar ----------------------------------------------------------------

KEY = ["sku", "location"]

# A bucket's positions: one row per (sku, location). on_hand = base_oh + after_oh, where the base
# is a seed or the latest count (base_oh_at its instant, null: none yet) and after_oh sums the
# movements after it; reserved = base_r + after_r likewise (its base is the seed only).
BOOKS_SCHEMA = {
    "sku": pl.String, "location": pl.String, "base_oh": pl.Int64, "base_oh_at": pl.Int64, "base_r": pl.Int64,
    "base_r_at": pl.Int64, "seeded": pl.Boolean, "after_oh": pl.Int64, "after_r": pl.Int64,
}
# The movements after each base (ts, qty): what a late count, older than some of them, re-sums.
PENDING_SCHEMA = {"sku": pl.String, "location": pl.String, "ts": pl.Int64, "qty": pl.Int64}


def _new_books(keys: pl.DataFrame, seeds: dict) -> pl.DataFrame:
    """Books of keys seen for the first time, from their snapshot seed (PositionBook.seed)."""
    rows = []
    for sku, location in keys.iter_rows():
        seed = seeds.get((sku, location))
        s = seed[1] if seed is not None else None
        on_hand = None if s is None else s.get("on_hand")
        rows.append((
            sku, location, int(on_hand or 0), None if on_hand is None else s["as_of"], int((s or {}).get("reserved") or 0),
            None if s is None else s["as_of"], on_hand is not None, 0, 0,
        ))
    return pl.DataFrame(rows, schema=BOOKS_SCHEMA, orient="row")


def apply_movements(books: pl.DataFrame, pending: pl.DataFrame, moves: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Apply a batch of movements (arrival order) to a bucket's positions in one columnar step.

    Exactly what `PositionBook.apply` does one movement at a time: a count sets on_hand at its
    instant if it is newer than the base; a movement adds to on_hand if it happened after the
    base. Within the batch, the base of row i is the newest of the old base and the counts up to
    i; each count that raises it starts a segment whose figure is the count plus the movements
    after it (from `pending` and from earlier rows), and the rows of a segment add a running sum.

    Args:
      books: BOOKS_SCHEMA rows, one for every key of `moves` (new keys already seeded).
      pending: PENDING_SCHEMA rows of the bucket.
      moves: sku, location, event_id, event_type, qty, reserved_delta, `_ts` (µs), `_arrival`.

    Returns:
      (books, pending, updates): updates has per movement its effect now (on_hand_change,
      reserved_change), the position after it (on_hand, reserved), `seeded`, and for the alerts
      `prev_on_hand` (before it) and `had_base` (a seed or count fixed on_hand before it).

    Example (seeded 10 at t=100; a sale of 3 at 200, a count of 5 at 300, a sale of 1 at 250
    arriving last): on_hand goes 7, 5, 5, as in PositionBook's docstring.
    """
    m = (
        moves.select(*KEY, "event_id", "event_type", "system", "file", "locator", pl.col(TS).alias("ts"), pl.col("qty"),
                     pl.col("reserved_delta").alias("rd"), ARRIVAL)
        .with_row_index("_i")
        .join(books, on=KEY, how="left", maintain_order="left")
    )
    over = KEY
    is_count = pl.col("event_type") == "count"
    b0 = pl.col("base_oh_at").fill_null(_NO_TIME)
    m = m.with_columns(
        is_count.alias("_is_count"),
        pl.max_horizontal(b0, pl.when(is_count).then(pl.col("ts")).cum_max().forward_fill().shift(1).over(over)).alias("_prior"),
    )
    raising = pl.col("_is_count") & (pl.col("ts") > pl.col("_prior"))
    m = m.with_columns(
        raising.alias("_raise"),
        raising.cast(pl.Int64).cum_sum().over(over).alias("_seg"),
        pl.when(raising).then(pl.col("ts")).forward_fill().over(over).fill_null(b0).alias("_b"),
    )
    m = m.with_columns(
        pl.when(~pl.col("_is_count") & (pl.col("ts") > pl.col("_b"))).then(pl.col("qty")).otherwise(0).cum_sum().over([*KEY, "_seg"]).alias("_within"),
        pl.when(pl.col("ts") > pl.col("base_r_at").fill_null(_NO_TIME)).then(pl.col("rd")).otherwise(0).alias("reserved_change"),
    )
    start = pl.col("base_oh") + pl.col("after_oh")
    segs = m.filter(pl.col("_raise")).select(*KEY, "_seg", pl.col("_i").alias("_start"), pl.col("ts").alias("_sb"), pl.col("qty").alias("_cq"))
    if segs.height:
        earlier = (
            segs.join(m.filter(~pl.col("_is_count")).select(*KEY, "_i", "ts", "qty"), on=KEY)
            .filter((pl.col("_i") < pl.col("_start")) & (pl.col("ts") > pl.col("_sb")))
            .group_by([*KEY, "_seg"]).agg(pl.col("qty").sum().alias("_c"))
        )
        older = (
            segs.join(pending, on=KEY).filter(pl.col("ts") > pl.col("_sb"))
            .group_by([*KEY, "_seg"]).agg(pl.col("qty").sum().alias("_p"))
        )
        segs = (
            segs.join(earlier, on=[*KEY, "_seg"], how="left").join(older, on=[*KEY, "_seg"], how="left")
            .select(*KEY, "_seg", "_cq", (pl.col("_cq") + pl.col("_c").fill_null(0) + pl.col("_p").fill_null(0)).alias("_total"))
        )
        m = m.join(segs, on=[*KEY, "_seg"], how="left", maintain_order="left")
        total = pl.when(pl.col("_seg") == 0).then(start).otherwise(pl.col("_total"))
    else:
        m = m.with_columns(pl.lit(None, dtype=pl.Int64).alias("_cq"))
        total = start
    m = m.with_columns(
        (total + pl.col("_within")).alias("on_hand"),
        (pl.col("base_r") + pl.col("after_r") + pl.col("reserved_change").cum_sum().over(over)).alias("reserved"),
    )
    m = m.with_columns(
        pl.col("on_hand").shift(1).over(over).fill_null(start).alias("prev_on_hand"),
        (pl.col("_prior") > _NO_TIME).alias("had_base"),
    ).with_columns((pl.col("on_hand") - pl.col("prev_on_hand")).alias("on_hand_change"))
    last = m.group_by(KEY, maintain_order=True).agg(
        pl.col("on_hand").last(), pl.col("reserved").last(), pl.col("_seg").last(), pl.col("_b").last(), pl.col("_cq").last(),
    )
    touched = (
        books.join(last, on=KEY, how="inner")
        .with_columns(
            pl.when(pl.col("_seg") > 0).then(pl.col("_cq")).otherwise(pl.col("base_oh")).alias("base_oh"),
            pl.when(pl.col("_seg") > 0).then(pl.col("_b")).otherwise(pl.col("base_oh_at")).alias("base_oh_at"),
        )
        .with_columns((pl.col("on_hand") - pl.col("base_oh")).alias("after_oh"), (pl.col("reserved") - pl.col("base_r")).alias("after_r"))
        .select(list(BOOKS_SCHEMA))
    )
    books = pl.concat([books.join(last.select(KEY), on=KEY, how="anti"), touched])
    added = m.filter(~pl.col("_is_count")).select(*KEY, "ts", "qty")
    pending = (
        pl.concat([pending, added])
        .join(touched.select(*KEY, "base_oh_at"), on=KEY, how="left")
        .filter(pl.col("base_oh_at").is_null() | (pl.col("ts") > pl.col("base_oh_at")))
        .select(list(PENDING_SCHEMA))
    )
    updates = m.select(
        *KEY, "event_id", "event_type", pl.col("ts").alias("occurred_at"), "on_hand_change", "reserved_change", "on_hand", "reserved",
        "seeded", "prev_on_hand", "had_base", ARRIVAL, "system", "qty", "file", "locator",
    )
    return books, pending, updates


def compact_pending(books: pl.DataFrame, pending: pl.DataFrame, *, before: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold the movements older than `before` into the bases (PositionBook.compact, per bucket)."""
    old = pending.filter(pl.col("ts") < before)
    if not old.height:
        return books, pending
    folded = old.group_by(KEY).agg(pl.col("qty").sum().alias("_f"))
    books = books.join(folded, on=KEY, how="left").with_columns(
        (pl.col("base_oh") + pl.col("_f").fill_null(0)).alias("base_oh"), (pl.col("after_oh") - pl.col("_f").fill_null(0)).alias("after_oh"),
    ).select(list(BOOKS_SCHEMA))
    return books, pending.filter(pl.col("ts") >= before)


def figures_at_arrival(books_before: pl.DataFrame, updates: pl.DataFrame | None, figures: pl.DataFrame) -> pl.DataFrame:
    """The position each availability figure met on arrival: (figure rows, on_hand, reserved, had_base).

    A figure sees the movements that arrived before it (an as-of join on the arrival ordinal),
    else the position before the batch.
    """
    f = figures.sort(ARRIVAL).join(books_before, on=KEY, how="left", maintain_order="left").with_columns(
        (pl.col("base_oh") + pl.col("after_oh")).alias("_oh0"), (pl.col("base_r") + pl.col("after_r")).alias("_r0"),
        pl.col("base_oh_at").is_not_null().alias("_hb0"),
    )
    if updates is not None and updates.height:
        seen = updates.select(*KEY, ARRIVAL, pl.col("on_hand").alias("_oh1"), pl.col("reserved").alias("_r1"),
                              (pl.col("had_base") | (pl.col("event_type") == "count")).alias("_hb1")).sort(ARRIVAL)
        f = f.join_asof(seen, on=ARRIVAL, by=KEY, strategy="backward")
    else:
        f = f.with_columns(pl.lit(None, dtype=pl.Int64).alias("_oh1"), pl.lit(None, dtype=pl.Int64).alias("_r1"), pl.lit(None, dtype=pl.Boolean).alias("_hb1"))
    return f.with_columns(
        pl.coalesce("_oh1", "_oh0").alias("on_hand_at"), pl.coalesce("_r1", "_r0").alias("reserved_at"), pl.coalesce("_hb1", "_hb0").alias("had_base"),
    )


# --- Beam: parse and canonicalize ---------------------------------------------------------------


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


def _min_time(table: pa.Table) -> Timestamp:
    return Timestamp(micros=int(pl.from_arrow(table.select([TS]))[TS].min()))


class _CanonicalizeFn(beam.DoFn):
    """Canonicalize each RawChunk in one columnar call; movements are stamped at their earliest."""

    def __init__(self, params: StreamParams, spec: SourceSpec, sku_crosswalk: str, location_crosswalk: str):
        self.params = params
        self.spec = spec
        self.sku_crosswalk = sku_crosswalk
        self.location_crosswalk = location_crosswalk
        self.read = Metrics.counter(self.__class__, "events_read")
        self.written = Metrics.counter(self.__class__, "movements_canonicalized")
        self.reported = Metrics.counter(self.__class__, "figures_canonicalized")
        self.rejected = Metrics.counter(self.__class__, "events_quarantined")

    def setup(self) -> None:
        self.crosswalks = load_crosswalks(self.sku_crosswalk, self.location_crosswalk)

    def process(self, chunk: RawChunk) -> Iterator[Any]:
        movements, figures, quarantine = canonicalize_chunk(chunk, spec=self.spec, crosswalks=self.crosswalks, run_id=self.params.run_id)
        self.read.inc(len(chunk.texts))
        if movements.num_rows:
            self.written.inc(movements.num_rows)
            yield TimestampedValue(movements, _min_time(movements))
        if figures.num_rows:
            self.reported.inc(figures.num_rows)
            yield beam.pvalue.TaggedOutput(AVAILABILITY_TAG, TimestampedValue(figures, _min_time(figures)))
        if quarantine.num_rows:
            self.rejected.inc(quarantine.num_rows)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine)


@dataclasses.dataclass
class CanonicalizeEvents(beam.PTransform):
    """RawEvent / RawChunk -> canonical movement tables stamped at occurred_at (+ figures, quarantine).

    Messages are gathered per bundle; decoding is columnar (`decode_chunk`) with a per-line
    fallback, and canonicalization is the batch's own kernel (`canonical_events_frame`).
    """

    params: StreamParams
    spec: SourceSpec
    sku_crosswalk: str
    location_crosswalk: str

    def expand(self, raw):
        canon = (
            raw
            | "BatchPayloads" >> beam.ParDo(_BatchPayloadsFn()).with_output_types(RawChunk)
            | "CanonicalizeChunks" >> beam.ParDo(_CanonicalizeFn(self.params, self.spec, self.sku_crosswalk, self.location_crosswalk))
            .with_output_types(pa.Table, **{QUARANTINE_TAG: pa.Table, AVAILABILITY_TAG: pa.Table})
            .with_outputs(QUARANTINE_TAG, AVAILABILITY_TAG, main=MOVEMENTS_TAG)
        )
        return {MOVEMENTS_TAG: canon[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: canon[QUARANTINE_TAG]}


# Bytes before an ArrowBatch's IPC stream (tag length, tag, padding): 8 keeps Arrow's buffers aligned.
_HEADER = 8


class ArrowBatch:
    """A table in transit between keyed steps, with `ArrowBatchCoder` as its coder.

    Encoded once, as compressed Arrow IPC, when it first crosses a shuffle; decoded lazily, so a
    runner that decodes and re-encodes elements to group them (the FnApiRunner) only moves the
    bytes. `tag` tells inputs of one keyed step apart (movements / figures).
    """

    __slots__ = ("_table", "_wire", "tag")

    def __init__(self, table: pa.Table | None = None, *, tag: str = "", wire: bytes | None = None):
        self._table = table
        self._wire = wire
        self.tag = tag

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table = read_ipc(pa.py_buffer(self._wire)[_HEADER:])
        return self._table

    def wire(self) -> bytes:
        if self._wire is None:
            tag = self.tag.encode()
            self._wire = bytes([len(tag)]) + tag.ljust(_HEADER - 1, b"\0") + ipc_bytes(self._table)
        return self._wire

    def __reduce__(self):
        return _arrow_batch_from_wire, (self.wire(),)


def _arrow_batch_from_wire(wire: bytes) -> ArrowBatch:
    n = wire[0]
    return ArrowBatch(tag=wire[1:1 + n].decode(), wire=wire)


class ArrowBatchCoder(beam.coders.Coder):
    """Coder of ArrowBatch: its tag and compressed Arrow IPC stream, (re-)encoded without decoding."""

    def encode(self, value: ArrowBatch) -> bytes:
        return value.wire()

    def decode(self, encoded: bytes) -> ArrowBatch:
        return _arrow_batch_from_wire(encoded)

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return ArrowBatch


beam.coders.registry.register_coder(ArrowBatch, ArrowBatchCoder)


def _frame(value) -> pl.DataFrame:
    """A polars frame of an ArrowBatch, a pa.Table or a frame."""
    if isinstance(value, pl.DataFrame):
        return value
    return pl.from_arrow(value.table if isinstance(value, ArrowBatch) else value)


def _split_by_id_bucket(table: pa.Table, *, buckets: int) -> Iterator[tuple[int, ArrowBatch]]:
    if buckets == 1:
        yield 0, ArrowBatch(table)
        return
    df = pl.from_arrow(table)
    df = df.with_columns(pl.Series("_b", stable_bucket(df["event_id"].to_list(), buckets), dtype=pl.Int64))
    for (b,), part in df.partition_by("_b", as_dict=True, include_key=False).items():
        yield b, ArrowBatch(part.to_arrow())


# What RunningPosition reads of a movement or figure row: not the archive's other columns.
_POSITION_INPUT = (*("sku", "location"), "event_id", "event_type", "system", "qty", "reserved_delta", "file", "locator", TS, ARRIVAL)


def _split_by_key_bucket(table: pa.Table, *, buckets: int, tag: str = "") -> Iterator[tuple[int, ArrowBatch]]:
    df = pl.from_arrow(table.select(list(_POSITION_INPUT)))
    if buckets == 1:
        yield 0, ArrowBatch(df.to_arrow(), tag=tag)
        return
    df = _with_key_bucket(df, buckets)
    for (b,), part in df.partition_by("_b", as_dict=True, include_key=False).items():
        yield b, ArrowBatch(part.to_arrow(), tag=tag)


def _merge_in_arrival_order(element: tuple[int, Iterable[ArrowBatch]]) -> tuple[int, pl.DataFrame]:
    """A bounded replay's batches of one bucket as one frame, in the order they arrived."""
    key, batches = element
    return key, _in_arrival_order([_frame(b) for b in batches])


def _in_arrival_order(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames as one, sorted by arrival (no sort, which moves every string, when they already are)."""
    df = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    return df if df[ARRIVAL].is_sorted() else df.sort(ARRIVAL)


# --- Beam: de-duplication -------------------------------------------------------------------


def _drop_repeats(df: pl.DataFrame, params: StreamParams) -> tuple[pl.DataFrame, pa.Table | None]:
    """(first occurrence of each event_id, in order; quarantine rows of the repeats or None)."""
    first = pl.col("event_id").is_first_distinct()
    kept, repeats = df.filter(first), df.filter(~first)
    return kept, (_duplicates_quarantine(repeats, params) if repeats.height else None)


def _duplicates_quarantine(repeats: pl.DataFrame, params: StreamParams) -> pa.Table:
    return _quarantine_frame(
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
        kept, repeats = _drop_repeats(element[1], self.params)
        self.kept.inc(kept.height)
        if kept.height:  # a frame: the gate, fused with this step, reads it as it is
            yield kept
        if repeats is not None:
            self.dups.inc(repeats.num_rows)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, repeats)


# A movement row between the live de-dup steps: the batch's columns, occurred_at as epoch µs.
_ROW_COLUMNS = (*MOVEMENT.names, *EXTRA_COLUMNS)
_ROW_SCHEMA = {
    **{f.name: pl.Int64 if f.name == "occurred_at" else pl.from_arrow(pa.array([], f.type)).dtype for f in MOVEMENT},
    RAW: pl.String, WM: pl.Int64, TS: pl.Int64, ARRIVAL: pl.Int64,
}


def _rows_by_event_id(table: pa.Table) -> Iterator[tuple[str, tuple]]:
    """A movement batch as (event_id, row) pairs: the key of the live de-dup's state."""
    df = _frame(table).select(_ROW_COLUMNS).with_columns(pl.col("occurred_at").dt.epoch("us"))
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


@dataclasses.dataclass
class DedupEvents(beam.PTransform):
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
                | "KeyByIdBucket" >> beam.FlatMap(_split_by_id_bucket, buckets=self.params.gate_shards).with_output_types(tuple[int, ArrowBatch])
                | "GroupIdBuckets" >> beam.GroupByKey()
                | "MergeIdBatches" >> beam.Map(_merge_in_arrival_order).with_output_types(tuple[int, pl.DataFrame])
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


# --- Beam: lateness gate -----------------------------------------------------------------------


def _with_expiry(df: pl.DataFrame, params: StreamParams) -> pl.DataFrame:
    size = params.window_seconds * MICROS
    return df.with_columns(((pl.col(TS) // size + 1) * size + params.lateness_seconds * MICROS).alias("_expiry"))


def _by_window_expiry(table: pa.Table, *, params: StreamParams) -> Iterator[TimestampedValue]:
    """Split a batch per (position bucket, window) and move each part to its window's expiry."""
    df = _with_key_bucket(_with_expiry(_frame(table), params), params.gate_shards)
    for (b, expiry), part in df.partition_by(["_b", "_expiry"], as_dict=True).items():
        yield TimestampedValue((b, ArrowBatch(part.drop("_b").to_arrow())), Timestamp(micros=expiry - 1))


class _ClassifyLatenessFn(beam.DoFn):
    """Admit a batch's events or quarantine them as late_event (see the module docstring).

    A pane Beam marks LATE arrived after its window expired: all of it is late. Otherwise an event
    is late when the replay clock (`_wm`, the bus time it arrived at) was past its window's
    expiry, which is how a bounded replay, whose watermark only moves at the end, tells.
    """

    def __init__(self, params: StreamParams):
        self.params = params
        self.on_time = Metrics.counter(self.__class__, "events_admitted")
        self.late = Metrics.counter(self.__class__, "late_events_quarantined")

    def process(self, element, pane=beam.DoFn.PaneInfoParam) -> Iterator[Any]:
        if not isinstance(element, tuple):  # bounded: one batch, not grouped
            df = _with_expiry(_frame(element), self.params)
        else:
            tables = list(element[1])
            if not tables:  # a discarding pane after an early one may be empty
                return
            df = _in_arrival_order([_frame(t) for t in tables])
        late_pane = pane.timing == PaneInfoTiming.LATE
        late = pl.lit(True) if late_pane else (pl.col(WM).is_not_null() & (pl.col(WM) > pl.col("_expiry")))
        df = df.with_columns(late.alias("_late"))
        # Past the gate nothing quarantines an event any more: the raw text stays behind.
        admitted = df.filter(~pl.col("_late")).select(*MOVEMENT.names, TS, ARRIVAL)
        if admitted.height:
            self.on_time.inc(admitted.height)
            table = admitted.to_arrow()
            yield TimestampedValue(table, _min_time(table))
        late_rows = df.filter(pl.col("_late"))
        if late_rows.height:
            self.late.inc(late_rows.height)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, self._quarantine(late_rows))

    def _quarantine(self, late: pl.DataFrame) -> pa.Table:
        reasons = []
        for file, locator, event_id, occurred, expiry in late.select("file", "locator", "event_id", "occurred_at", "_expiry").iter_rows():
            closed = dt.datetime.fromtimestamp(expiry / MICROS, dt.timezone.utc).isoformat()
            reasons.append(
                f"{file}: {locator}: event_id {event_id} occurred at {occurred.isoformat()}; its window closed at {closed} "
                f"(allowed lateness {self.params.allowed_lateness_minutes:g} min); the nightly batch applies it"
            )
        late = late.with_columns(pl.Series("_reason", reasons, dtype=pl.String))
        return _quarantine_frame(late, code="late_event", reason=pl.col("_reason"), run_id=self.params.run_id,
                                 source=self.params.source, when=pl.col(TS)).to_arrow()


@dataclasses.dataclass
class GateLateEvents(beam.PTransform):
    """Quarantine events that arrive after their window's allowed lateness (see module doc).

    Events later than `dedup_ttl_hours` past their window are dropped by Beam before the gate
    sees them; the TTL bounds how long the gate keeps per-window trigger state. Admitted events
    leave as one table per (position bucket, window) pane, stamped at their earliest event.
    """

    params: StreamParams
    bounded: bool = False

    def expand(self, movements):
        p = self.params
        if self.bounded:
            # A bounded replay's watermark is -inf until the end: only the replay clock can
            # make an event late, and nothing needs grouping for that.
            gated = movements | "ClassifyLateness" >> beam.ParDo(_ClassifyLatenessFn(p)).with_output_types(pa.Table, **{QUARANTINE_TAG: pa.Table}).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
            return {MOVEMENTS_TAG: gated[MOVEMENTS_TAG], QUARANTINE_TAG: gated[QUARANTINE_TAG]}
        gated = (
            movements
            | "StampWindowExpiry" >> beam.FlatMap(_by_window_expiry, params=p).with_output_types(tuple[int, ArrowBatch])
            | "WindowByExpiry" >> beam.WindowInto(
                window.FixedWindows(p.window_seconds, offset=p.lateness_seconds % p.window_seconds),
                trigger=trigger.AfterWatermark(early=trigger.AfterCount(1), late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=p.ttl_seconds),
            )
            | "GroupByExpiry" >> beam.GroupByKey()
            | "ClassifyLateness" >> beam.ParDo(_ClassifyLatenessFn(p)).with_output_types(pa.Table, **{QUARANTINE_TAG: pa.Table}).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
        )
        admitted = gated[MOVEMENTS_TAG] | "RewindowAdmitted" >> beam.WindowInto(GlobalWindows())
        late = gated[QUARANTINE_TAG] | "RewindowLate" >> beam.WindowInto(GlobalWindows())
        return {MOVEMENTS_TAG: admitted, QUARANTINE_TAG: late}


@dataclasses.dataclass
class StockEvents(beam.PTransform):
    """RawEvent / RawChunk -> admitted, de-duplicated movement tables (+ figures, quarantine)."""

    params: StreamParams
    spec: SourceSpec
    sku_crosswalk: str
    location_crosswalk: str
    bounded: bool = False

    def expand(self, raw):
        canon = raw | "Canonicalize" >> CanonicalizeEvents(self.params, self.spec, self.sku_crosswalk, self.location_crosswalk)
        deduped = canon[MOVEMENTS_TAG] | "Dedup" >> DedupEvents(self.params, bounded=self.bounded)
        gated = deduped[MOVEMENTS_TAG] | "GateLateness" >> GateLateEvents(self.params, bounded=self.bounded)
        quarantine = (
            (canon[QUARANTINE_TAG], deduped[QUARANTINE_TAG], gated[QUARANTINE_TAG])
            | "FlattenQuarantine" >> beam.Flatten()
        )
        return {MOVEMENTS_TAG: gated[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: quarantine}


# --- Beam: running position and alerts ---------------------------------------------------------

_UPDATE_COLUMNS = ("sku", "location", "event_id", "event_type", "occurred_at", "on_hand_change", "reserved_change", "on_hand", "reserved", "seeded")
_ALERT_COLUMNS = (*ALERTS.names, "_date")


class _RunningPositionFn(beam.DoFn):
    """Keep the positions of a bucket of (sku, location) in state; apply each batch at once.

    Inputs are (bucket, (movements table | None, figures table | None)); figures are a channel's
    published available-to-sell, compared with ATP, never applied. The snapshot seeds come as a
    dict side input, read when a key is first seen. Emits one updates table per batch and the
    alerts; a timer per bucket folds movements older than twice the lateness horizon.
    """

    POSITIONS = ReadModifyWriteStateSpec("positions", TableCoder())
    COMPACT = TimerSpec("compact", beam.TimeDomain.WATERMARK)
    COMPACT_AT = ReadModifyWriteStateSpec("compact_at", PickleCoder())

    def __init__(self, params: StreamParams, items: str, location_crosswalk: str, sku_crosswalk: str, *, bounded: bool = False):
        self.params = params
        self.items_uri = items
        self.location_crosswalk = location_crosswalk
        self.sku_crosswalk = sku_crosswalk
        self.bounded = bounded
        self.updates = Metrics.counter(self.__class__, "positions_updated")
        self.alerts = Metrics.counter(self.__class__, "alerts_raised")

    def setup(self) -> None:
        items = load_items(self.items_uri)
        self.items = items.select("sku", "abc_class", "category", pl.col("safety_stock").fill_null(0).cast(pl.Int64).alias("_safety"))
        self.location_types = load_crosswalks(self.sku_crosswalk, self.location_crosswalk).location_types()

    def _horizon(self) -> int:
        return (self.params.window_seconds + self.params.lateness_seconds) * MICROS

    def process(self, element, seeds: dict, state=beam.DoFn.StateParam(POSITIONS), compact_at=beam.DoFn.StateParam(COMPACT_AT),
                compact=beam.DoFn.TimerParam(COMPACT)) -> Iterator[Any]:
        _, value = element
        if isinstance(value, ArrowBatch):  # one batch, straight from the split
            moves, figs = (None, _frame(value)) if value.tag == "f" else (_frame(value), None)
        else:  # a bounded replay's merged batches
            moves, figs = value
        books, pending = state.read() or (pl.DataFrame(schema=BOOKS_SCHEMA), pl.DataFrame(schema=PENDING_SCHEMA))
        keys = pl.concat([f.select(KEY) for f in (moves, figs) if f is not None]).unique(maintain_order=True)
        new = keys.join(books.select(KEY), on=KEY, how="anti")
        if new.height:
            # The seed is a side input, so it is there before the key's first movement.
            books = pl.concat([books, _new_books(new, seeds)])
        before = books
        updates = None
        if moves is not None and moves.height:
            books, pending, updates = apply_movements(books, pending, moves)
            self.updates.inc(updates.height)
            if not self.bounded and compact_at.read() is None:
                at = int(moves[TS].min()) + 2 * self._horizon()
                compact.set(Timestamp(micros=at))
                compact_at.write(at)
        state.write((books, pending))
        alerts = []
        if updates is not None:
            alerts += self._count_alerts(updates)
            table = updates.select(_UPDATE_COLUMNS).to_arrow()
            yield TimestampedValue(table, Timestamp(micros=int(updates["occurred_at"].min())))
        if figs is not None and figs.height:
            alerts += self._availability_alerts(figures_at_arrival(before, updates, figs))
        if alerts:
            self.alerts.inc(len(alerts))
            yield beam.pvalue.TaggedOutput(ALERTS_TAG, pa.Table.from_pylist(alerts, schema=ALERTS.append(pa.field("_date", pa.string()))))

    @on_timer(COMPACT)
    def fold_old(self, fired=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(POSITIONS),
                 compact_at=beam.DoFn.StateParam(COMPACT_AT), compact=beam.DoFn.TimerParam(COMPACT)) -> None:
        # The watermark is past `fired`: any count still admitted is newer than fired - horizon.
        stored = state.read()
        if stored is None:
            compact_at.clear()
            return
        books, pending = compact_pending(*stored, before=fired.micros - self._horizon())
        state.write((books, pending))
        if pending.height:
            at = fired.micros + self._horizon()
            compact.set(Timestamp(micros=at))
            compact_at.write(at)
        else:
            compact_at.clear()

    def _tolerances(self, rows: pl.DataFrame, record: pl.Expr) -> pl.DataFrame:
        abs_e, pct_e = _tolerance_exprs(self.params.tolerances)
        return (
            rows.with_columns(pl.col("system").alias("other_system"))
            .join(self.items, on="sku", how="left", maintain_order="left")
            .join(self.location_types, on="location", how="left", maintain_order="left")
            .with_columns(pl.max_horizontal(pl.lit(float(self.params.min_alert_abs)), pl.max_horizontal(abs_e, pct_e * record.abs())).alias("_tol"))
        )

    def _alert(self, *, ts: int, rule: str, subject: str, threshold: float, observed: float, severity: str, message: str) -> dict:
        local = dt.datetime.fromtimestamp(ts / MICROS, zoneinfo.ZoneInfo(self.params.timezone)).date()
        return {"snapshot_date": local, "rule": rule, "subject": subject, "threshold": threshold, "observed": observed,
                "severity": severity, "message": message, "run_id": self.params.run_id, "_date": local.isoformat()}

    def _count_alerts(self, updates: pl.DataFrame) -> list[dict]:
        counts = updates.filter((pl.col("event_type") == "count") & pl.col("system").is_in(list(self.params.alert_systems)) & pl.col("had_base"))
        if not counts.height:
            return []
        counts = self._tolerances(counts, pl.col("prev_on_hand")).filter((pl.col("qty") - pl.col("prev_on_hand")).abs() > pl.col("_tol"))
        out = []
        for r in counts.iter_rows(named=True):
            running, tol = r["prev_on_hand"], float(r["_tol"])
            diff = r["qty"] - running
            out.append(self._alert(
                ts=r["occurred_at"], rule=f"{r['system']}_divergence", subject=f"{r['sku']}@{r['location']}", threshold=tol, observed=float(diff),
                severity="critical" if tol == 0 or abs(diff) > 2 * tol else "warning",
                message=(f"{r['system']} counted {r['qty']} of {r['sku']} at {r['location']} ({r['event_id']}, "
                         f"{r['file']}: {r['locator']}); running position {running}, tolerance {tol:g}"),
            ))
        return out

    def _availability_alerts(self, figs: pl.DataFrame) -> list[dict]:
        figs = (
            figs.filter(pl.col("had_base") & pl.col("system").is_in(list(self.params.alert_systems)))
            .join(self.items.select("sku", "_safety"), on="sku", how="left", maintain_order="left")
            .with_columns(pl.max_horizontal(pl.lit(0), pl.col("on_hand_at") - pl.col("reserved_at") - pl.col("_safety").fill_null(0)).alias("_atp"))
            .filter(pl.col("qty") > pl.col("_atp"))
        )
        out = []
        for r in figs.iter_rows(named=True):
            atp, published = r["_atp"], r["qty"]
            out.append(self._alert(
                ts=r[TS], rule="availability_above_atp", subject=f"{r['sku']}@{r['location']}/{r['system']}", threshold=float(atp),
                observed=float(published), severity="critical",
                message=(f"{r['system']} publishes {published} of {r['sku']} at {r['location']} available "
                         f"({r['file']}: {r['locator']}); running ATP {atp}: oversell risk {published - atp}"),
            ))
        return out


# A bounded replay's merged position inputs of one bucket: (movements, figures), either may be None.
_BothSides = tuple[Optional[pl.DataFrame], Optional[pl.DataFrame]]


def _merge_position_inputs(element: tuple[int, Iterable[ArrowBatch]]) -> tuple[int, tuple]:
    """A bounded replay's movement and figure batches of one bucket: two frames (or None) in arrival order."""
    key, batches = element
    sides: dict[str, list[pl.DataFrame]] = {"": [], "f": []}
    for b in batches:
        sides[b.tag].append(_frame(b))
    merged = tuple(_in_arrival_order(frames) if frames else None for frames in (sides[""], sides["f"]))
    return key, merged


@dataclasses.dataclass
class RunningPosition(beam.PTransform):
    """Movement tables (+ seeds, figures) -> an updates table per batch, plus alerts.

    Args (of `expand`): a dict with `movements`, `availability` and `seeds` PCollections; seeds
    are `seed_element` pairs from the latest published inventory_snapshot, read by the workers
    (`transforms.seeds.ReadSeeds`) and taken as a side input (every worker holds them all: about
    100 bytes a position).
    """

    params: StreamParams
    items: str
    sku_crosswalk: str
    location_crosswalk: str
    bounded: bool = False

    def expand(self, inputs):
        n = self.params.gate_shards
        keyed = (
            inputs[MOVEMENTS_TAG]
            | "KeyMovements" >> beam.FlatMap(_split_by_key_bucket, buckets=n).with_output_types(tuple[int, ArrowBatch]),
            inputs[AVAILABILITY_TAG]
            | "GlobalWindowFigures" >> beam.WindowInto(GlobalWindows())
            | "KeyFigures" >> beam.FlatMap(_split_by_key_bucket, buckets=n, tag="f").with_output_types(tuple[int, ArrowBatch]),
        ) | "FlattenPositionInputs" >> beam.Flatten().with_output_types(tuple[int, ArrowBatch])
        if self.bounded:
            keyed = keyed | "GroupPositionBuckets" >> beam.GroupByKey() | "MergePositionBatches" >> beam.Map(_merge_position_inputs).with_output_types(tuple[int, _BothSides])
        out = keyed | "ApplyMovements" >> beam.ParDo(
            _RunningPositionFn(self.params, self.items, self.location_crosswalk, self.sku_crosswalk, bounded=self.bounded),
            beam.pvalue.AsDict(inputs["seeds"]),
        ).with_output_types(pa.Table, **{ALERTS_TAG: pa.Table}).with_outputs(ALERTS_TAG, main=UPDATES_TAG)
        return {UPDATES_TAG: out[UPDATES_TAG], ALERTS_TAG: out[ALERTS_TAG]}


# --- Beam: windowed position changes -----------------------------------------------------------


def _window_partials(table: pa.Table, *, params: StreamParams, by_bucket: bool = True) -> Iterator[TimestampedValue]:
    """Sum an updates table per (window, sku, location); one element per (bucket, window), keyed so.

    Each element carries rows (sku, location, on_hand change, reserved change, events,
    (occurred_at, event_id) of the latest event, on_hand and reserved after it, seeded) and is
    stamped at its earliest event, inside its window.
    """
    size = params.window_seconds * MICROS
    # One sort and one group_by: the sums, and the latest event of each group (its latest
    # instant, ties broken by event_id).
    df = pl.from_arrow(table).sort(["occurred_at", "event_id"], maintain_order=True)
    sums = df.group_by((pl.col("occurred_at") // size * size).alias("_w"), *KEY).agg(
        pl.col("on_hand_change").sum(), pl.col("reserved_change").sum(), pl.len().cast(pl.Int64).alias("events"),
        pl.col("occurred_at").first().alias("_first"), pl.col("occurred_at").last().alias("_last_ts"), pl.col("event_id").last().alias("_last_id"),
        pl.col("on_hand").last(), pl.col("reserved").last(), pl.col("seeded").last(),
    )
    # A bounded replay has one pane per window: one element per window then, whatever the bucket.
    sums = _with_key_bucket(sums, params.gate_shards) if by_bucket else sums.with_columns(pl.lit(0, dtype=pl.Int64).alias("_b"))
    rows = sums.sort("_w", "_b").select(
        "_w", "_b", "_first", *KEY, "on_hand_change", "reserved_change", "events", "_last_ts", "_last_id", "on_hand", "reserved", "seeded",
    ).rows()
    # Keyed by (bucket, window start): a key has one window, so the trigger machinery of the
    # panes does not scan a bucket's other windows at every timer.
    for (w, b), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        group = list(group)
        yield TimestampedValue(((b, w), [r[3:] for r in group]), Timestamp(micros=min(r[2] for r in group)))


class _ChangesFn(beam.CombineFn):
    """Merge a bucket's window sums per (sku, location); keep the position after the latest event."""

    def create_accumulator(self):
        return {}  # (sku, location) -> [on_hand change, reserved change, events, (ts, event_id), on_hand, reserved, seeded]

    def add_input(self, acc, rows):
        for sku, location, d_oh, d_r, n, ts, event_id, on_hand, reserved, seeded in rows:
            a = acc.get((sku, location))
            if a is None:
                acc[(sku, location)] = [d_oh, d_r, n, (ts, event_id), on_hand, reserved, seeded]
                continue
            a[0] += d_oh
            a[1] += d_r
            a[2] += n
            if (ts, event_id) > a[3]:
                a[3:] = [(ts, event_id), on_hand, reserved, seeded]
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for acc in accs:
            for key, a in acc.items():
                o = out.get(key)
                if o is None:
                    out[key] = list(a)
                    continue
                o[0] += a[0]
                o[1] += a[1]
                o[2] += a[2]
                if a[3] > o[3]:
                    o[3:] = a[3:]
        return out

    def extract_output(self, acc):
        return acc


class _FormatChangesFn(beam.DoFn):
    def __init__(self, run_id: str):
        self.run_id = run_id
        self.panes = Metrics.counter(self.__class__, "panes_emitted")

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam) -> Iterator[pa.Table]:
        _, acc = element
        self.panes.inc()
        keys = sorted(acc)
        vals = [acc[k] for k in keys]
        n = len(keys)
        start, end = win.start.to_utc_datetime(has_tz=True), win.end.to_utc_datetime(has_tz=True)
        yield pa.table(
            {
                "window_start": pa.array([start] * n, POSITION_CHANGES.field("window_start").type),
                "window_end": pa.array([end] * n, POSITION_CHANGES.field("window_end").type),
                "sku": [k[0] for k in keys], "location": [k[1] for k in keys],
                "on_hand_change": pa.array([v[0] for v in vals], pa.int64()), "reserved_change": pa.array([v[1] for v in vals], pa.int64()),
                "events": pa.array([v[2] for v in vals], pa.int64()), "on_hand_after": pa.array([v[4] for v in vals], pa.int64()),
                "reserved_after": pa.array([v[5] for v in vals], pa.int64()), "seeded": pa.array([v[6] for v in vals], pa.bool_()),
                "pane_timing": [_TIMING.get(pane.timing, "UNKNOWN")] * n, "pane_index": pa.array([pane.index] * n, pa.int64()),
                "run_id": [self.run_id] * n, "_date": [_utc_date(win.start.micros)] * n,
            }
        )


@dataclasses.dataclass
class WindowPositionChanges(beam.PTransform):
    """Updates tables -> per (window, bucket) panes of POSITION_CHANGES rows, one table a pane.

    Fixed event-time windows; an EARLY pane every `early_firing_seconds` of processing time while
    the window is open, the ON_TIME pane when the watermark passes its end, a LATE pane for each
    late batch within the allowed lateness. Panes accumulate, so the latest one of a (window, sku,
    location) is its figure. A pane holds every key of its bucket that moved in the window.
    A bounded replay (`early_panes=False`) has no processing-time clock and no late data on the
    batch runners: one pane per window, holding every key that moved in it (keyed by window
    alone, so the pane count does not grow with the buckets).
    """

    params: StreamParams
    early_panes: bool = True

    def expand(self, updates):
        p = self.params
        partials = updates | "SumPerWindow" >> beam.FlatMap(_window_partials, params=p, by_bucket=self.early_panes).with_output_types(tuple[tuple[int, int], Any])
        if self.early_panes:
            windowed = partials | "WindowUpdates" >> beam.WindowInto(
                window.FixedWindows(p.window_seconds),
                trigger=trigger.AfterWatermark(early=trigger.AfterProcessingTime(p.early_firing_seconds), late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=Duration(seconds=p.lateness_seconds),
            )
        else:  # one pane per window: the batch runners' fast path, no trigger machinery
            windowed = partials | "WindowUpdates" >> beam.WindowInto(window.FixedWindows(p.window_seconds))
        return (
            windowed
            | "SumChanges" >> beam.CombinePerKey(_ChangesFn())
            | "FormatChanges" >> beam.ParDo(_FormatChangesFn(p.run_id)).with_output_types(pa.Table)
        )


# --- Parquet files ---------------------------------------------------------------------------


def _partitions(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(partition value, rows) of a table: its `_date`, else the UTC date of occurred_at / as_of."""
    if "_date" in table.column_names:
        values = pc.unique(table["_date"])
        if len(values) == 1:  # a pane, a batch of one day: no split
            yield values[0].as_py() or "unknown", table
            return
    df = pl.from_arrow(table)
    if "_date" in df.columns:
        part = pl.col("_date").fill_null("unknown")
    else:
        when = "occurred_at" if "occurred_at" in df.columns else "as_of"
        part = pl.col(when).dt.date().cast(pl.String).fill_null("unknown")
    df = df.with_columns(part.alias("_part"))
    for (value,), rows in df.partition_by("_part", as_dict=True).items():
        yield value, rows.drop("_part").to_arrow()


class _WriteBundleFn(beam.DoFn):
    """Write each bundle's rows as one Parquet file per partition, named after the run and a uuid.

    A bundle is the unit a runner commits, so a file never holds half of one; a retried bundle
    may write its rows again under another name (movements carry event_id for that). Elements
    are tables (or dict rows).
    """

    def __init__(self, *, root: str, table: str, schema: pa.Schema, partition: str, prefix: str):
        self.root = root
        self.table = table
        self.schema = schema
        self.partition = partition
        self.prefix = prefix
        self.rows_written = Metrics.counter(self.__class__, f"{table}_rows_written")

    def start_bundle(self) -> None:
        self.parts: dict[str, list[pa.Table]] = {}
        self.rows: list[dict] = []

    def process(self, element) -> None:
        if isinstance(element, dict):
            self.rows.append(element)
            return
        for part, rows in _partitions(element):
            self.parts.setdefault(part, []).append(rows)

    def _conform(self, tables: list[pa.Table]) -> pa.Table:
        """A partition's tables as one table of the schema: one select and cast per file."""
        names = self.schema.names
        tables = [t.select(names) for t in tables]
        try:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except pa.ArrowInvalid:  # parts of other (castable) types: conform each first
            table = pa.concat_tables([t.cast(self.schema) for t in tables])
        return table if table.schema.equals(self.schema) else table.cast(self.schema)

    def finish_bundle(self) -> None:
        if self.rows:
            for part, rows in _partitions(pa.Table.from_pylist(self.rows)):
                self.parts.setdefault(part, []).append(rows)
        fs, _, _ = fsspec.get_fs_token_paths(self.root)
        for part, tables in self.parts.items():
            folder = f"{self.root}/{self.table}/{self.partition}={part}"
            fs.makedirs(folder, exist_ok=True)
            name = f"{self.prefix}-{uuid.uuid4().hex[:12]}.parquet"
            table = self._conform(tables)
            tmp = f"{folder}/.{name}.tmp"
            with fs.open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
            fs.mv(tmp, f"{folder}/{name}")
            self.rows_written.inc(table.num_rows)
        self.parts, self.rows = {}, []


@dataclasses.dataclass
class WriteParquetFiles(beam.PTransform):
    """Write tables (or dict rows) to `<root>/<table>/<partition>=<value>/<prefix>-<uuid>.parquet`."""

    root: str
    table: str
    schema: pa.Schema
    partition: str
    prefix: str

    def expand(self, rows):
        return rows | "WriteBundles" >> beam.ParDo(
            _WriteBundleFn(root=self.root, table=self.table, schema=self.schema, partition=self.partition, prefix=self.prefix)
        )


def as_position_row(r: dict) -> dict:
    """One availability figure as a POSITION dict (for WriteParquetFiles)."""
    return {"system": r["system"], "sku": r["sku"], "location": r["location"], "as_of": r["occurred_at"],
            "on_hand": None, "reserved": None, "available": r["qty"], "uom_source": None, "units_per_uom": None,
            "unit_cost": None, "source": r["source"], "file": r["file"], "locator": r["locator"]}


def as_position_table(table: pa.Table) -> pa.Table:
    """A table of availability figures as POSITION rows (partitioned by event date)."""
    df = pl.from_arrow(table)
    return df.select(
        "system", "sku", "location", pl.col("occurred_at").alias("as_of"), pl.lit(None, dtype=pl.Int64).alias("on_hand"),
        pl.lit(None, dtype=pl.Int64).alias("reserved"), pl.col("qty").alias("available"), pl.lit(None, dtype=pl.String).alias("uom_source"),
        pl.lit(None, dtype=pl.Int64).alias("units_per_uom"), pl.lit(None, dtype=pl.Float64).alias("unit_cost"), "source", "file", "locator",
    ).to_arrow()


# Output tables of the stream: name -> (schema, partition column).
STREAM_TABLES = {
    "movements": (MOVEMENT, "event_date"),
    "quarantine": (QUARANTINE, "event_date"),
    "alerts": (ALERTS, "snapshot_date"),
    "position_changes": (POSITION_CHANGES, "window_date"),
    "availability": (POSITION, "event_date"),
}
