"""Keep the running position per (sku, location) in state and raise alerts: `RunningPosition`.

Movements (and availability figures) are split by a stable hash bucket of (sku, location); each
bucket's positions live in state as `books` / `pending` frames (`transforms.stream.kernels`), seeded
from the latest published inventory_snapshot (`seed_element`, a side input), and every batch is
applied at once. The step emits one updates table per batch and the alerts of that batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from invrecon.schemas import ALERTS
from invrecon.transforms.canonical import load_items
from invrecon.transforms.coders import TableCoder
from invrecon.transforms.stream.alerts import availability_alerts, count_alerts
from invrecon.transforms.stream.batches import ArrowBatch, as_frame, in_arrival_order, split_by_key_bucket
from invrecon.transforms.stream.kernels import BOOKS_SCHEMA, PENDING_SCHEMA, apply_movements, compact_pending, figures_at_arrival, new_books
from invrecon.transforms.stream.params import (
    ALERTS_TAG,
    AVAILABILITY_TAG,
    KEY,
    MICROS,
    MOVEMENTS_TAG,
    TS,
    UPDATES_TAG,
    CrosswalkFiles,
    StreamParams,
)

__all__ = ["RunningPosition", "seed_element"]

_UPDATE_COLUMNS = ("sku", "location", "event_id", "event_type", "occurred_at", "on_hand_change", "reserved_change", "on_hand", "reserved", "seeded")

# A bounded replay's merged position inputs of one bucket: (movements, figures), either may be None.
_BothSides = tuple[pl.DataFrame | None, pl.DataFrame | None]


def seed_element(row: dict, *, as_of_micros: int) -> tuple[tuple[str, str], tuple[str, dict]]:
    """A published inventory_snapshot row (sku, location, on_hand, reserved) as a RunningPosition input (`transforms.seeds`)."""
    return (row["sku"], row["location"]), ("seed", {"on_hand": row.get("on_hand"), "reserved": row.get("reserved"), "as_of": as_of_micros})


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

    def __init__(self, *, params: StreamParams, items: str, crosswalks: CrosswalkFiles, bounded: bool = False):
        self.params = params
        self.items_uri = items
        self.crosswalks = crosswalks
        self.bounded = bounded
        self.updates = Metrics.counter(self.__class__, "positions_updated")
        self.alerts = Metrics.counter(self.__class__, "alerts_raised")

    def setup(self) -> None:
        items = load_items(self.items_uri)
        self.items = items.select("sku", "abc_class", "category", pl.col("safety_stock").fill_null(0).cast(pl.Int64).alias("_safety"))
        self.location_types = self.crosswalks.load().location_types()

    def _horizon(self) -> int:
        return (self.params.window_seconds + self.params.lateness_seconds) * MICROS

    def process(self, element, seeds: dict, state=beam.DoFn.StateParam(POSITIONS), compact_at=beam.DoFn.StateParam(COMPACT_AT),
                compact=beam.DoFn.TimerParam(COMPACT)) -> Iterator[Any]:
        _, value = element
        if isinstance(value, ArrowBatch):  # one batch, straight from the split
            moves, figs = (None, as_frame(value)) if value.tag == "f" else (as_frame(value), None)
        else:  # a bounded replay's merged batches
            moves, figs = value
        books, pending = state.read() or (pl.DataFrame(schema=BOOKS_SCHEMA), pl.DataFrame(schema=PENDING_SCHEMA))
        keys = pl.concat([f.select(KEY) for f in (moves, figs) if f is not None]).unique(maintain_order=True)
        new = keys.join(books.select(KEY), on=KEY, how="anti")
        if new.height:
            # The seed is a side input, so it is there before the key's first movement.
            books = pl.concat([books, new_books(new, seeds)])
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
            alerts += count_alerts(updates, params=self.params, items=self.items, location_types=self.location_types)
            table = updates.select(_UPDATE_COLUMNS).to_arrow()
            yield TimestampedValue(table, Timestamp(micros=int(updates["occurred_at"].min())))
        if figs is not None and figs.height:
            alerts += availability_alerts(figures_at_arrival(before, updates, figs), params=self.params, items=self.items)
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


def _merge_position_inputs(element: tuple[int, Iterable[ArrowBatch]]) -> tuple[int, tuple]:
    """A bounded replay's movement and figure batches of one bucket: two frames (or None) in arrival order."""
    key, batches = element
    sides: dict[str, list[pl.DataFrame]] = {"": [], "f": []}
    for b in batches:
        sides[b.tag].append(as_frame(b))
    merged = tuple(in_arrival_order(frames) if frames else None for frames in (sides[""], sides["f"]))
    return key, merged


@dataclasses.dataclass(kw_only=True)
class RunningPosition(beam.PTransform):
    """Movement tables (+ seeds, figures) -> an updates table per batch, plus alerts.

    Args (of `expand`): a dict with `movements`, `availability` and `seeds` PCollections; seeds
    are `seed_element` pairs from the latest published inventory_snapshot, read by the workers
    (`transforms.seeds.ReadSeeds`) and taken as a side input (every worker holds them all: about
    100 bytes a position).

    Attributes:
      params: the stream's settings (buckets, windows, tolerances of the alerts).
      items: the item master (ABC class, safety stock of the alerts).
      crosswalks: the crosswalk files (the location types of the alerts).
      bounded: a replay of files on a batch runner: each bucket's batches merged, no timers.
    """

    params: StreamParams
    items: str
    crosswalks: CrosswalkFiles
    bounded: bool = False

    def expand(self, inputs):
        n = self.params.gate_shards
        keyed = (
            inputs[MOVEMENTS_TAG]
            | "KeyMovements" >> beam.FlatMap(split_by_key_bucket, buckets=n).with_output_types(tuple[int, ArrowBatch]),
            inputs[AVAILABILITY_TAG]
            | "GlobalWindowFigures" >> beam.WindowInto(GlobalWindows())
            | "KeyFigures" >> beam.FlatMap(split_by_key_bucket, buckets=n, tag="f").with_output_types(tuple[int, ArrowBatch]),
        ) | "FlattenPositionInputs" >> beam.Flatten().with_output_types(tuple[int, ArrowBatch])
        if self.bounded:
            keyed = keyed | "GroupPositionBuckets" >> beam.GroupByKey() | "MergePositionBatches" >> beam.Map(_merge_position_inputs).with_output_types(tuple[int, _BothSides])
        out = keyed | "ApplyMovements" >> beam.ParDo(
            _RunningPositionFn(params=self.params, items=self.items, crosswalks=self.crosswalks, bounded=self.bounded),
            beam.pvalue.AsDict(inputs["seeds"]),
        ).with_output_types(pa.Table, **{ALERTS_TAG: pa.Table}).with_outputs(ALERTS_TAG, main=UPDATES_TAG)
        return {UPDATES_TAG: out[UPDATES_TAG], ALERTS_TAG: out[ALERTS_TAG]}
