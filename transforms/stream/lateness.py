"""Gate events by their window's allowed lateness: `GateLateEvents` admits them or quarantines them as `late_event`.

Worked example (window 15 min, allowed lateness 10 min): a sale at 10:05 belongs to window
[10:00, 10:15); that window accepts data until the watermark passes 10:25. Arriving while the
watermark is at 10:20 it is applied and the window's figure is re-emitted in a LATE pane;
arriving at watermark 10:30 it is quarantined as `late_event` (and the nightly batch applies it).

Beam itself silently drops data behind a window's expiry, so the gate decides with Beam's own
watermark instead of guessing one: each batch of a bucket's events of one window is moved forward
in event time to the instant that window expires (always allowed) and grouped with an early
trigger on every element; a pane Beam marks LATE is exactly "arrived after the window expired".
The batch then gets its events' time back; being held behind that expiry instant, it can never be
dropped by the windows downstream. A bounded replay, whose watermark only moves at the end, gates
by the replay clock instead (`_wm`, the bus time each line arrived at).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from invrecon.schemas import MOVEMENT
from invrecon.transforms.stream.batches import ArrowBatch, as_frame, in_arrival_order, min_time, with_key_bucket
from invrecon.transforms.stream.params import ARRIVAL, MICROS, MOVEMENTS_TAG, QUARANTINE_TAG, TS, WM, StreamParams
from invrecon.transforms.stream.quarantine import quarantine_frame

__all__ = ["GateLateEvents", "window_expiry"]


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


def _with_expiry(df: pl.DataFrame, params: StreamParams) -> pl.DataFrame:
    size = params.window_seconds * MICROS
    return df.with_columns(((pl.col(TS) // size + 1) * size + params.lateness_seconds * MICROS).alias("_expiry"))


def _by_window_expiry(table: pa.Table, *, params: StreamParams) -> Iterator[TimestampedValue]:
    """Split a batch per (position bucket, window) and move each part to its window's expiry."""
    df = with_key_bucket(_with_expiry(as_frame(table), params), params.gate_shards)
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
            df = _with_expiry(as_frame(element), self.params)
        else:
            tables = list(element[1])
            if not tables:  # a discarding pane after an early one may be empty
                return
            df = in_arrival_order([as_frame(t) for t in tables])
        late_pane = pane.timing == PaneInfoTiming.LATE
        late = pl.lit(True) if late_pane else (pl.col(WM).is_not_null() & (pl.col(WM) > pl.col("_expiry")))
        df = df.with_columns(late.alias("_late"))
        # Past the gate nothing quarantines an event any more: the raw text stays behind.
        admitted = df.filter(~pl.col("_late")).select(*MOVEMENT.names, TS, ARRIVAL)
        if admitted.height:
            self.on_time.inc(admitted.height)
            table = admitted.to_arrow()
            yield TimestampedValue(table, min_time(table))
        late_rows = df.filter(pl.col("_late"))
        if late_rows.height:
            self.late.inc(late_rows.height)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, self._quarantine(late_rows))

    def _quarantine(self, late: pl.DataFrame) -> pa.Table:
        reasons = []
        for file, locator, event_id, occurred, expiry in late.select("file", "locator", "event_id", "occurred_at", "_expiry").iter_rows():
            closed = dt.datetime.fromtimestamp(expiry / MICROS, dt.UTC).isoformat()
            reasons.append(
                f"{file}: {locator}: event_id {event_id} occurred at {occurred.isoformat()}; its window closed at {closed} "
                f"(allowed lateness {self.params.allowed_lateness_minutes:g} min); the nightly batch applies it"
            )
        late = late.with_columns(pl.Series("_reason", reasons, dtype=pl.String))
        return quarantine_frame(late, code="late_event", reason=pl.col("_reason"), run_id=self.params.run_id,
                                source=self.params.source, when=pl.col(TS)).to_arrow()


@dataclasses.dataclass(kw_only=True)
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
