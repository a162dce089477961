"""Sum position updates per fixed window into POSITION_CHANGES panes: `WindowPositionChanges`.

A pane is one table of (window, sku, location) rows: the on_hand and reserved change, the events,
and the position after the window's latest event. Panes accumulate (the latest pane of a window
is its figure): EARLY panes while the window is open, ON_TIME when the watermark passes its end,
a LATE pane for each late batch within the allowed lateness.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from invrecon.schemas import POSITION_CHANGES
from invrecon.transforms.stream.batches import with_key_bucket
from invrecon.transforms.stream.params import KEY, MICROS, StreamParams
from invrecon.transforms.stream.quarantine import utc_date

__all__ = ["WindowPositionChanges"]

_TIMING = {
    PaneInfoTiming.EARLY: "EARLY",
    PaneInfoTiming.ON_TIME: "ON_TIME",
    PaneInfoTiming.LATE: "LATE",
    PaneInfoTiming.UNKNOWN: "UNKNOWN",
}


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
    sums = with_key_bucket(sums, params.gate_shards) if by_bucket else sums.with_columns(pl.lit(0, dtype=pl.Int64).alias("_b"))
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
                "run_id": [self.run_id] * n, "_date": [utc_date(win.start.micros)] * n,
            }
        )


@dataclasses.dataclass(kw_only=True)
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
