"""The streaming stock-event transforms behind `invrecon stream` (DESIGN.md §5, §8).

Raw event payloads (JSON text from Pub/Sub, Kafka or a replayed JSON Lines file) become canonical
movements, a running position per (sku, location), windowed position changes and alerts:

    RawEvent ──ParseEvents──▶ fields @ occurred_at ──CanonicalizeEvents──▶ movement rows
             ──DedupEvents (state per event_id, expiry timer)──▶
             ──GateLateEvents (beyond allowed lateness ─▶ quarantine `late_event`)──▶
             ──RunningPosition (state per sku/location, seeded from the warehouse)──▶ updates, alerts
             ──WindowPositionChanges (fixed windows, early + late panes)──▶ position changes

Every rejected payload leaves through the `quarantine` output with its raw text and a reason code
(`malformed_event`, `missing_field`, `bad_timestamp`, the canonical codes of
`transforms.sources.canonical_events`, `duplicate_event`, `late_event`), so for any input
read = archived movements + reported figures + quarantined.

Lateness, worked example (window 15 min, allowed lateness 10 min): a sale at 10:05 belongs to
window [10:00, 10:15); that window accepts data until the watermark passes 10:25. Arriving while
the watermark is at 10:20 it is applied and the window's figure is re-emitted in a LATE pane;
arriving at watermark 10:30 it is quarantined as `late_event` (and the nightly batch applies it).
Beam itself silently drops data behind a window's expiry, so the gate decides with Beam's own
watermark instead of guessing one: each event is moved forward in event time to the instant its
window expires (always allowed) and grouped with an early trigger on every element; a pane Beam
marks LATE is exactly "arrived after the window expired". The event then gets its own timestamp
back; being held behind that expiry instant, it can never be dropped by the windows downstream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
import zlib
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.coders import BooleanCoder, PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from schemas import ALERTS, MOVEMENT, POSITION, QUARANTINE
from transforms.canonical import load_crosswalks, load_items
from transforms.reconcile import Tolerance, _tolerance_exprs
from transforms.sources import SourceSpec, canonical_events, parse_event

__all__ = [
    "ALERTS_TAG",
    "AVAILABILITY_TAG",
    "MOVEMENTS_TAG",
    "POSITION_CHANGES",
    "QUARANTINE_TAG",
    "CanonicalizeEvents",
    "DedupEvents",
    "GateLateEvents",
    "PositionBook",
    "RawEvent",
    "RunningPosition",
    "StockEvents",
    "StreamParams",
    "WindowPositionChanges",
    "WriteParquetFiles",
    "as_position_row",
    "event_time_micros",
    "parse_raw_event",
    "quarantine_row",
    "read_event_lines",
    "seed_element",
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
        pa.field("seeded", pa.bool_()),  # the position started from a warehouse snapshot
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
    # Keys of the lateness gate's grouping; spreads it over workers, a few states per window.
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


_PUBLISHED = re.compile(r'"published_at"\s*:\s*"([^"]+)"')
_OCCURRED = re.compile(r'"occurred_at"\s*:\s*"([^"]+)"')


def read_event_lines(uri: str, *, timezone: str) -> Iterator[RawEvent]:
    """Yield the non-blank lines of one JSON Lines file as RawEvents with a replay watermark.

    The replay watermark of line n is the latest `published_at` (else `occurred_at`) of lines
    1..n: the file is in publish order, so this is the bus clock when line n arrived.
    """
    wm: int | None = None
    with fsspec.open(uri, "rb") as f:
        for n, line in enumerate(f, start=1):
            text = line.decode("utf-8", errors="replace").strip()
            if n == 1:
                text = text.lstrip("\ufeff")
            if not text:
                continue
            m = _PUBLISHED.search(text) or _OCCURRED.search(text)
            if m:
                t = event_time_micros(m.group(1), timezone=timezone)
                if t is not None and (wm is None or t > wm):
                    wm = t
            yield RawEvent(text, uri, f"line {n}", wm)


def seed_element(row: dict, *, as_of_micros: int) -> tuple[tuple[str, str], tuple[str, dict]]:
    """A warehouse snapshot row (sku, location, on_hand, reserved) as a RunningPosition input."""
    return (row["sku"], row["location"]), ("seed", {"on_hand": row.get("on_hand"), "reserved": row.get("reserved"), "as_of": as_of_micros})


@dataclasses.dataclass
class PositionBook:
    """The running position of one (sku, location), correct under out-of-order events.

    A base (a warehouse seed, or the latest `count`) fixes on_hand at an instant; movements after
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


# --- parse and canonicalize ------------------------------------------------------------------


class _ParseEventFn(beam.DoFn):
    def __init__(self, params: StreamParams):
        self.params = params
        self.read = Metrics.counter(self.__class__, "events_read")
        self.rejected = Metrics.counter(self.__class__, "events_quarantined")

    def process(self, raw: RawEvent) -> Iterator[Any]:
        self.read.inc()
        fields, ts, q = parse_raw_event(raw, timezone=self.params.timezone, source=self.params.source)
        if q is not None:
            self.rejected.inc()
            q["run_id"] = self.params.run_id
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, q)
            return
        yield TimestampedValue(fields, Timestamp(micros=ts))


class _CanonicalizeFn(beam.DoFn):
    """Canonicalize the events of a bundle in one columnar call of `canonical_events`."""

    # Events buffered before a columnar call: amortizes polars' per-call cost in a replay and
    # keeps a streaming bundle's latency bounded.
    MAX_BUFFER = 20_000

    def __init__(self, params: StreamParams, spec: SourceSpec, sku_crosswalk: str, location_crosswalk: str):
        self.params = params
        self.spec = spec
        self.sku_crosswalk = sku_crosswalk
        self.location_crosswalk = location_crosswalk
        self.written = Metrics.counter(self.__class__, "movements_canonicalized")
        self.reported = Metrics.counter(self.__class__, "figures_canonicalized")
        self.rejected = Metrics.counter(self.__class__, "events_quarantined")

    def setup(self) -> None:
        self.crosswalks = load_crosswalks(self.sku_crosswalk, self.location_crosswalk)

    def start_bundle(self) -> None:
        self.buffer: list[tuple[dict, WindowedValue]] = []

    def process(self, fields: dict, ts=beam.DoFn.TimestampParam, win=beam.DoFn.WindowParam) -> Iterator[Any]:
        self.buffer.append((fields, WindowedValue(None, ts, (win,))))
        if len(self.buffer) >= self.MAX_BUFFER:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        buffered, self.buffer = self.buffer, []
        by_file: dict[str | None, list[tuple[dict, WindowedValue]]] = {}
        for item in buffered:
            by_file.setdefault(item[0]["_file"], []).append(item)
        for uri, items in by_file.items():
            yield from self._canonicalize(uri, items)

    def _canonicalize(self, uri: str | None, items: list[tuple[dict, WindowedValue]]) -> Iterator[Any]:
        events, kinds = [], {}
        for fields, _ in items:
            if fields["event_type"] == AVAILABILITY_EVENT:
                fields = {**fields, "event_type": "count"}
                kinds[fields["_locator"]] = AVAILABILITY_TAG
            events.append(fields)
        by_locator = {f["_locator"]: (f, w) for f, w in items}
        result = canonical_events(events, uri=uri or "", spec=self.spec, crosswalks=self.crosswalks)
        for row in result.movements.to_pylist():
            fields, w = by_locator[row["locator"]]
            row["file"] = uri
            row["_raw"] = fields["_raw"]
            row["_wm"] = fields["_wm"]
            tag = kinds.get(row["locator"], MOVEMENTS_TAG)
            (self.reported if tag == AVAILABILITY_TAG else self.written).inc()
            out = WindowedValue(row, w.timestamp, w.windows)
            yield out if tag == MOVEMENTS_TAG else beam.pvalue.TaggedOutput(tag, out)
        for q in result.quarantine.to_pylist():
            _, w = by_locator[q["locator"]]
            q.update(run_id=self.params.run_id, file=uri, _date=_utc_date(w.timestamp.micros))
            if q["reason"] and uri and not q["reason"].startswith(uri):
                q["reason"] = f"{uri}: {q['locator']}: {q['reason']}"
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, WindowedValue(q, w.timestamp, w.windows))


def _utc_date(micros: int) -> str:
    return dt.datetime.fromtimestamp(micros / MICROS, dt.timezone.utc).date().isoformat()


@dataclasses.dataclass
class CanonicalizeEvents(beam.PTransform):
    """RawEvent -> canonical movement rows stamped at occurred_at (+ availability, quarantine).

    Parsing is per event (`parse_event`); canonicalization is the batch's own columnar kernel
    (`canonical_events`) run on each bundle, so ids, locations, units and signs mean exactly what
    they mean in the nightly batch.
    """

    params: StreamParams
    spec: SourceSpec
    sku_crosswalk: str
    location_crosswalk: str

    def expand(self, raw):
        parsed = raw | "ParseEvents" >> beam.ParDo(_ParseEventFn(self.params)).with_outputs(QUARANTINE_TAG, main="events")
        canon = parsed.events | "CanonicalizeBundles" >> beam.ParDo(
            _CanonicalizeFn(self.params, self.spec, self.sku_crosswalk, self.location_crosswalk)
        ).with_outputs(QUARANTINE_TAG, AVAILABILITY_TAG, main=MOVEMENTS_TAG)
        quarantine = (parsed[QUARANTINE_TAG], canon[QUARANTINE_TAG]) | "FlattenParseQuarantine" >> beam.Flatten()
        return {MOVEMENTS_TAG: canon[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: quarantine}


# --- de-duplication ------------------------------------------------------------------------


class _DedupFn(beam.DoFn):
    """Pass the first movement of each event_id; repeats go to quarantine as duplicate_event.

    The event_id is remembered until the watermark passes occurred_at + TTL, then forgotten
    (state would otherwise grow with every event ever seen).
    """

    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRE = TimerSpec("expire", beam.TimeDomain.WATERMARK)

    def __init__(self, params: StreamParams):
        self.params = params
        self.kept = Metrics.counter(self.__class__, "events_kept")
        self.dups = Metrics.counter(self.__class__, "duplicates_quarantined")

    def process(self, element: tuple[str, dict], ts=beam.DoFn.TimestampParam, seen=beam.DoFn.StateParam(SEEN), expire=beam.DoFn.TimerParam(EXPIRE)) -> Iterator[Any]:
        event_id, row = element
        if seen.read():
            self.dups.inc()
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_row(
                source=row["source"], file=row["file"], locator=row["locator"], code="duplicate_event",
                reason=f"{row['file']}: {row['locator']}: event_id {event_id} was already applied; counted once",
                raw=row["_raw"], run_id=self.params.run_id, when=ts.micros,
            ))
            return
        seen.write(True)
        expire.set(ts + Duration(seconds=self.params.ttl_seconds))
        self.kept.inc()
        yield row

    @on_timer(EXPIRE)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)) -> None:
        seen.clear()


@dataclasses.dataclass
class DedupEvents(beam.PTransform):
    """De-duplicate movement rows by event_id in Beam state with an expiry timer."""

    params: StreamParams

    def expand(self, movements):
        return (
            movements
            | "GlobalWindowEvents" >> beam.WindowInto(GlobalWindows())
            | "KeyByEventId" >> beam.Map(lambda row: (row["event_id"], row)).with_output_types(tuple[str, Any])
            | "DropRepeats" >> beam.ParDo(_DedupFn(self.params)).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
        )


# --- lateness gate -------------------------------------------------------------------------


def _to_expiry(row: dict, ts=beam.DoFn.TimestampParam, *, params: StreamParams) -> TimestampedValue:
    _, expiry = window_expiry(ts.micros, window_seconds=params.window_seconds, lateness_seconds=params.lateness_seconds)
    shard = zlib.crc32(row["event_id"].encode()) % params.gate_shards
    return TimestampedValue((shard, (row, ts.micros, expiry)), Timestamp(micros=expiry - 1))


class _ClassifyLatenessFn(beam.DoFn):
    def __init__(self, params: StreamParams):
        self.params = params
        self.on_time = Metrics.counter(self.__class__, "events_admitted")
        self.late = Metrics.counter(self.__class__, "late_events_quarantined")

    def process(self, element, pane=beam.DoFn.PaneInfoParam) -> Iterator[Any]:
        _, items = element
        if isinstance(items, tuple) and isinstance(items[0], dict):  # bounded: one, not grouped
            items = [items]
        for row, ts, expiry in items:
            replay_late = row["_wm"] is not None and row["_wm"] > expiry
            if pane.timing == PaneInfoTiming.LATE or replay_late:
                self.late.inc()
                closed = dt.datetime.fromtimestamp(expiry / MICROS, dt.timezone.utc).isoformat()
                yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_row(
                    source=row["source"], file=row["file"], locator=row["locator"], code="late_event",
                    reason=(f"{row['file']}: {row['locator']}: event_id {row['event_id']} occurred at "
                            f"{row['occurred_at'].isoformat()}; its window closed at {closed} (allowed lateness "
                            f"{self.params.allowed_lateness_minutes:g} min); the nightly batch applies it"),
                    raw=row["_raw"], run_id=self.params.run_id, when=ts,
                ))
            else:
                self.on_time.inc()
                yield TimestampedValue(row, Timestamp(micros=ts))


@dataclasses.dataclass
class GateLateEvents(beam.PTransform):
    """Quarantine events that arrive after their window's allowed lateness (see module doc).

    Events later than `dedup_ttl_hours` past their window are dropped by Beam before the gate
    sees them; the TTL bounds how long the gate keeps per-window trigger state.
    """

    params: StreamParams
    bounded: bool = False

    def expand(self, movements):
        p = self.params
        if self.bounded:
            # A bounded replay's watermark is -inf until the end: only the replay clock can
            # make an event late, and nothing needs grouping for that.
            gated = (
                movements
                | "StampWindowExpiry" >> beam.Map(_to_expiry, params=p)
                | "ClassifyLateness" >> beam.ParDo(_ClassifyLatenessFn(p)).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
            )
            return {MOVEMENTS_TAG: gated[MOVEMENTS_TAG], QUARANTINE_TAG: gated[QUARANTINE_TAG]}
        gated = (
            movements
            | "StampWindowExpiry" >> beam.Map(_to_expiry, params=p)
            | "WindowByExpiry" >> beam.WindowInto(
                window.FixedWindows(p.window_seconds, offset=p.lateness_seconds % p.window_seconds),
                trigger=trigger.AfterWatermark(early=trigger.AfterCount(1), late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=p.ttl_seconds),
            )
            | "GroupByExpiry" >> beam.GroupByKey()
            | "ClassifyLateness" >> beam.ParDo(_ClassifyLatenessFn(p)).with_outputs(QUARANTINE_TAG, main=MOVEMENTS_TAG)
        )
        admitted = gated[MOVEMENTS_TAG] | "RewindowAdmitted" >> beam.WindowInto(GlobalWindows())
        late = gated[QUARANTINE_TAG] | "RewindowLate" >> beam.WindowInto(GlobalWindows())
        return {MOVEMENTS_TAG: admitted, QUARANTINE_TAG: late}


@dataclasses.dataclass
class StockEvents(beam.PTransform):
    """RawEvent -> admitted, de-duplicated canonical movements (+ availability, quarantine)."""

    params: StreamParams
    spec: SourceSpec
    sku_crosswalk: str
    location_crosswalk: str
    bounded: bool = False

    def expand(self, raw):
        canon = raw | "Canonicalize" >> CanonicalizeEvents(self.params, self.spec, self.sku_crosswalk, self.location_crosswalk)
        deduped = canon[MOVEMENTS_TAG] | "Dedup" >> DedupEvents(self.params)
        gated = deduped[MOVEMENTS_TAG] | "GateLateness" >> GateLateEvents(self.params, bounded=self.bounded)
        quarantine = (
            (canon[QUARANTINE_TAG], deduped[QUARANTINE_TAG], gated[QUARANTINE_TAG])
            | "FlattenQuarantine" >> beam.Flatten()
        )
        return {MOVEMENTS_TAG: gated[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: quarantine}


# --- running position and alerts -----------------------------------------------------------


class _RunningPositionFn(beam.DoFn):
    """Keep a PositionBook per (sku, location); emit an update per movement and alerts.

    Inputs are (key, (kind, payload)) with kind `movement` or `availability` (a channel's
    published available-to-sell, compared with ATP, never applied); the warehouse seeds come as
    a dict side input, read when a key is first seen.
    """

    BOOK = ReadModifyWriteStateSpec("book", PickleCoder())
    COMPACT = TimerSpec("compact", beam.TimeDomain.WATERMARK)
    COMPACT_AT = ReadModifyWriteStateSpec("compact_at", PickleCoder())

    def __init__(self, params: StreamParams, items: str, location_crosswalk: str, sku_crosswalk: str):
        self.params = params
        self.items_uri = items
        self.location_crosswalk = location_crosswalk
        self.sku_crosswalk = sku_crosswalk
        self.updates = Metrics.counter(self.__class__, "positions_updated")
        self.alerts = Metrics.counter(self.__class__, "alerts_raised")

    def setup(self) -> None:
        items = load_items(self.items_uri)
        self.safety = dict(zip(items["sku"].to_list(), items["safety_stock"].to_list()))
        self.items = items.select("sku", "abc_class", "category")
        self.location_types = load_crosswalks(self.sku_crosswalk, self.location_crosswalk).location_types()

    def _horizon(self) -> int:
        return (self.params.window_seconds + self.params.lateness_seconds) * MICROS

    def process(self, element, seeds: dict, ts=beam.DoFn.TimestampParam, book_state=beam.DoFn.StateParam(BOOK),
                compact_at=beam.DoFn.StateParam(COMPACT_AT), compact=beam.DoFn.TimerParam(COMPACT)) -> Iterator[Any]:
        (sku, location), (kind, payload) = element
        book: PositionBook | None = book_state.read()
        if book is None:
            # The seed is a side input, so it is there before the key's first movement.
            book = PositionBook()
            seed = seeds.get((sku, location))
            if seed is not None:
                book.seed(on_hand=seed[1]["on_hand"], reserved=seed[1]["reserved"], as_of=seed[1]["as_of"])
            book_state.write(book)
        if kind == AVAILABILITY_TAG:
            yield from self._check_availability(book, sku, location, payload, ts)
            return
        row = payload
        is_count = row["event_type"] == "count"
        if is_count and row["system"] in self.params.alert_systems and book.has_base:
            yield from self._check_count(book, sku, location, row, ts)
        d_oh, d_r = book.apply(ts=ts.micros, qty=row["qty"], reserved_delta=row["reserved_delta"], is_count=is_count)
        book_state.write(book)
        if compact_at.read() is None:
            at = ts.micros + 2 * self._horizon()
            compact.set(Timestamp(micros=at))
            compact_at.write(at)
        self.updates.inc()
        yield {
            "sku": sku, "location": location, "event_id": row["event_id"], "event_type": row["event_type"],
            "occurred_at": ts.micros, "on_hand_change": d_oh, "reserved_change": d_r,
            "on_hand": book.on_hand, "reserved": book.reserved, "seeded": book.seeded,
        }

    @on_timer(COMPACT)
    def fold_old(self, fired=beam.DoFn.TimestampParam, book_state=beam.DoFn.StateParam(BOOK),
                 compact_at=beam.DoFn.StateParam(COMPACT_AT), compact=beam.DoFn.TimerParam(COMPACT)) -> None:
        # The watermark is past `fired`: any count still admitted is newer than fired - horizon.
        book: PositionBook = book_state.read() or PositionBook()
        book.compact(before=fired.micros - self._horizon())
        book_state.write(book)
        if book.pending:
            at = fired.micros + self._horizon()
            compact.set(Timestamp(micros=at))
            compact_at.write(at)
        else:
            compact_at.clear()

    def _tolerance(self, sku: str, location: str, system: str, record_qty: int) -> float:
        frame = (
            pl.DataFrame({"sku": [sku], "location": [location], "other_system": [system]})
            .join(self.items, on="sku", how="left")
            .join(self.location_types, on="location", how="left")
        )
        abs_e, pct_e = _tolerance_exprs(self.params.tolerances)
        return max(self.params.min_alert_abs, float(frame.select(pl.max_horizontal(abs_e, pct_e * abs(record_qty))).item()))

    def _alert(self, *, ts: Timestamp, rule: str, subject: str, threshold: float, observed: float, severity: str, message: str) -> beam.pvalue.TaggedOutput:
        self.alerts.inc()
        local = dt.datetime.fromtimestamp(ts.micros / MICROS, zoneinfo.ZoneInfo(self.params.timezone)).date()
        return beam.pvalue.TaggedOutput(ALERTS_TAG, {
            "snapshot_date": local, "rule": rule, "subject": subject, "threshold": threshold,
            "observed": observed, "severity": severity, "message": message, "run_id": self.params.run_id,
            "_date": local.isoformat(),
        })

    def _check_count(self, book: PositionBook, sku: str, location: str, row: dict, ts: Timestamp) -> Iterator[Any]:
        running = book.on_hand
        diff = row["qty"] - running
        tol = self._tolerance(sku, location, row["system"], running)
        if abs(diff) > tol:
            yield self._alert(
                ts=ts, rule=f"{row['system']}_divergence", subject=f"{sku}@{location}", threshold=tol, observed=float(diff),
                severity="critical" if tol == 0 or abs(diff) > 2 * tol else "warning",
                message=(f"{row['system']} counted {row['qty']} of {sku} at {location} ({row['event_id']}, "
                         f"{row['file']}: {row['locator']}); running position {running}, tolerance {tol:g}"),
            )

    def _check_availability(self, book: PositionBook, sku: str, location: str, row: dict, ts: Timestamp) -> Iterator[Any]:
        if not book.has_base or row["system"] not in self.params.alert_systems:
            return
        atp = max(0, book.on_hand - book.reserved - int(self.safety.get(sku) or 0))
        published = row["qty"]
        if published > atp:
            yield self._alert(
                ts=ts, rule="availability_above_atp", subject=f"{sku}@{location}/{row['system']}", threshold=float(atp),
                observed=float(published), severity="critical",
                message=(f"{row['system']} publishes {published} of {sku} at {location} available "
                         f"({row['file']}: {row['locator']}); running ATP {atp}: oversell risk {published - atp}"),
            )


@dataclasses.dataclass
class RunningPosition(beam.PTransform):
    """Movements (+ seeds, availability) -> one position update per movement, plus alerts.

    Args (of `expand`): a dict with `movements`, `availability` and `seeds` PCollections; seeds
    are `seed_element` pairs from the latest warehouse snapshot, read as a side input (every
    worker holds them all: about 100 bytes a position).
    """

    params: StreamParams
    items: str
    sku_crosswalk: str
    location_crosswalk: str

    def expand(self, inputs):
        keyed = (
            inputs[MOVEMENTS_TAG] | "KeyMovements" >> beam.Map(lambda r: ((r["sku"], r["location"]), ("movement", r))).with_output_types(tuple[tuple[str, str], Any]),
            inputs[AVAILABILITY_TAG]
            | "GlobalWindowFigures" >> beam.WindowInto(GlobalWindows())
            | "KeyFigures" >> beam.Map(lambda r: ((r["sku"], r["location"]), (AVAILABILITY_TAG, r))).with_output_types(tuple[tuple[str, str], Any]),
        ) | "FlattenPositionInputs" >> beam.Flatten().with_output_types(tuple[tuple[str, str], Any])
        out = keyed | "ApplyMovements" >> beam.ParDo(
            _RunningPositionFn(self.params, self.items, self.location_crosswalk, self.sku_crosswalk),
            beam.pvalue.AsDict(inputs["seeds"]),
        ).with_outputs(ALERTS_TAG, main=UPDATES_TAG)
        return {UPDATES_TAG: out[UPDATES_TAG], ALERTS_TAG: out[ALERTS_TAG]}


# --- windowed position changes -------------------------------------------------------------


class _ChangesFn(beam.CombineFn):
    """Sum the changes of a window's updates; keep the position after its latest event."""

    def create_accumulator(self):
        return [0, 0, 0, None]  # on_hand change, reserved change, events, (ts, event_id, on_hand, reserved, seeded)

    def add_input(self, acc, u):
        acc[0] += u["on_hand_change"]
        acc[1] += u["reserved_change"]
        acc[2] += 1
        last = (u["occurred_at"], u["event_id"], u["on_hand"], u["reserved"], u["seeded"])
        if acc[3] is None or last[:2] > acc[3][:2]:
            acc[3] = last
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            out[0] += a[0]
            out[1] += a[1]
            out[2] += a[2]
            if a[3] is not None and (out[3] is None or a[3][:2] > out[3][:2]):
                out[3] = a[3]
        return out

    def extract_output(self, acc):
        return acc


class _FormatChangesFn(beam.DoFn):
    def __init__(self, run_id: str):
        self.run_id = run_id
        self.panes = Metrics.counter(self.__class__, "panes_emitted")

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam) -> Iterator[dict]:
        (sku, location), (d_oh, d_r, n, last) = element
        self.panes.inc()
        yield {
            "window_start": win.start.to_utc_datetime(has_tz=True), "window_end": win.end.to_utc_datetime(has_tz=True),
            "sku": sku, "location": location, "on_hand_change": d_oh, "reserved_change": d_r, "events": n,
            "on_hand_after": last[2] if last else None, "reserved_after": last[3] if last else None,
            "seeded": last[4] if last else None, "pane_timing": _TIMING.get(pane.timing, "UNKNOWN"),
            "pane_index": pane.index, "run_id": self.run_id, "_date": _utc_date(win.start.micros),
        }


@dataclasses.dataclass
class WindowPositionChanges(beam.PTransform):
    """Position updates -> per (window, sku, location) panes of POSITION_CHANGES rows.

    Fixed event-time windows; an EARLY pane every `early_firing_seconds` of processing time while
    the window is open, the ON_TIME pane when the watermark passes its end, a LATE pane for each
    late event within the allowed lateness. Panes accumulate, so the latest one is the figure.
    A bounded replay (`early_panes=False`) has no processing-time clock and no late data on the
    batch runners: one pane per window.
    """

    params: StreamParams
    early_panes: bool = True

    def expand(self, updates):
        p = self.params
        if self.early_panes:
            windowed = updates | "WindowUpdates" >> beam.WindowInto(
                window.FixedWindows(p.window_seconds),
                trigger=trigger.AfterWatermark(early=trigger.AfterProcessingTime(p.early_firing_seconds), late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=Duration(seconds=p.lateness_seconds),
            )
        else:  # one pane per window: the batch runners' fast path, no trigger machinery
            windowed = updates | "WindowUpdates" >> beam.WindowInto(window.FixedWindows(p.window_seconds))
        return (
            windowed
            | "KeyUpdates" >> beam.Map(lambda u: ((u["sku"], u["location"]), u))
            | "SumChanges" >> beam.CombinePerKey(_ChangesFn())
            | "FormatChanges" >> beam.ParDo(_FormatChangesFn(p.run_id))
        )


# --- Parquet files ---------------------------------------------------------------------------


class _WriteBundleFn(beam.DoFn):
    """Write each bundle's rows as one Parquet file per partition, named after the run and a uuid.

    A bundle is the unit a runner commits, so a file never holds half of one; a retried bundle
    may write its rows again under another name (movements carry event_id for that).
    """

    def __init__(self, *, root: str, table: str, schema: pa.Schema, partition: str, prefix: str):
        self.root = root
        self.table = table
        self.schema = schema
        self.partition = partition
        self.prefix = prefix
        self.rows_written = Metrics.counter(self.__class__, f"{table}_rows_written")

    def start_bundle(self) -> None:
        self.parts: dict[str, list[dict]] = {}

    def process(self, row: dict) -> None:
        self.parts.setdefault(self._partition_of(row), []).append(row)

    def _partition_of(self, row: dict) -> str:
        if "_date" in row:
            return row["_date"]
        value = row.get("occurred_at")
        return value.date().isoformat() if isinstance(value, dt.datetime) else str(value)

    def finish_bundle(self) -> None:
        fs, _, _ = fsspec.get_fs_token_paths(self.root)
        for part, rows in self.parts.items():
            folder = f"{self.root}/{self.table}/{self.partition}={part}"
            fs.makedirs(folder, exist_ok=True)
            name = f"{self.prefix}-{uuid.uuid4().hex[:12]}.parquet"
            table = pa.Table.from_pylist(rows, schema=self.schema)
            tmp = f"{folder}/.{name}.tmp"
            with fs.open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
            fs.mv(tmp, f"{folder}/{name}")
            self.rows_written.inc(len(rows))
        self.parts = {}


@dataclasses.dataclass
class WriteParquetFiles(beam.PTransform):
    """Write dict rows to `<root>/<table>/<partition>=<value>/<prefix>-<uuid>.parquet`."""

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


# Output tables of the stream: name -> (schema, partition column).
STREAM_TABLES = {
    "movements": (MOVEMENT, "event_date"),
    "quarantine": (QUARANTINE, "event_date"),
    "alerts": (ALERTS, "snapshot_date"),
    "position_changes": (POSITION_CHANGES, "window_date"),
    "availability": (POSITION, "event_date"),
}
