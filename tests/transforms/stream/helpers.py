"""Shared helpers of the stream's tests: events as the bus carries them, the committed world's
crosswalks, movement tables from the real canonicalizer, and the graph driven by TestStream.

The cases use the committed world's crosswalks: store_item 500003 is SKU000003 (class B, safety
stock 2), store 0001 is S0001 (a store: tolerance max(1, 2%)), commerce node FC01 is DC01.
Windows are 15 minutes, allowed lateness 10 minutes, so window [10:00, 10:15) accepts data
until the watermark passes 10:25.
"""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp

from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.reconcile.classify import Tolerance
from invrecon.transforms.stream import (
    CrosswalkFiles,
    RawChunk,
    RawEvent,
    RunningPosition,
    StockEvents,
    StreamParams,
    WindowPositionChanges,
    canonicalize_chunk,
    event_time_micros,
)
from tests.conftest import WORLD

DAY = "2026-11-30"
UTC = dt.UTC

PARAMS = StreamParams(
    window_minutes=15, allowed_lateness_minutes=10, early_firing_seconds=60, dedup_ttl_hours=2,
    record_system="erp", timezone="UTC", alert_systems=("store", "commerce"),
    tolerances=(Tolerance(match=(("location_type", "store"),), abs=1, pct=0.02), Tolerance(match=(), abs=0, pct=0)), run_id="t", gate_shards=2,
)
SPEC = SourceSpec(name="stock_events", kind="events", system=None, timezone="UTC")
XW = CrosswalkFiles(sku=str(WORLD / "crosswalk" / "sku.csv"), location=str(WORLD / "crosswalk" / "location.csv"))
ITEMS = str(WORLD / "master" / "items.csv")


def at(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+00:00"


def us(hhmm: str) -> int:
    return event_time_micros(at(hhmm), timezone="UTC")


def ev(event_id: str, event_type: str, hhmm: str, qty: int, *, system: str = "store", location: str = "0001", item: str = "500003") -> str:
    return json.dumps({
        "event_id": event_id, "event_type": event_type, "occurred_at": at(hhmm), "system": system,
        "location": location, "item": {"id_type": "store_item", "id": item}, "qty": qty, "uom": "EA",
    })


def availability(event_id: str, hhmm: str, qty: int) -> str:
    """A commerce channel's published available-to-sell of SKU000003 at DC01 (node FC01)."""
    return json.dumps({
        "event_id": event_id, "event_type": "availability", "occurred_at": at(hhmm), "system": "commerce",
        "location": "FC01", "item": {"id_type": "store_item", "id": "500003"}, "qty": qty, "uom": "EA",
    })


def raw(text: str, n: int) -> RawEvent:
    return RawEvent(text, "pubsub://test", f"message {n}", None)


def chunk(*texts: str, first: int = 1, clock: list[int] | None = None) -> RawChunk:
    """Payloads as one bus chunk: messages `first`, `first` + 1, ... (arrival in that order)."""
    numbers = list(range(first, first + len(texts)))
    return RawChunk(list(texts), "pubsub://test", numbers, [f"message {n}" for n in numbers], clock, 0)


def canonical(*texts: str, first: int = 1, clock: list[int] | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(movements, availability figures, quarantine) of payloads, by the real canonicalizer."""
    return canonicalize_chunk(chunk(*texts, first=first, clock=clock), spec=SPEC, crosswalks=XW.load(), run_id="t")


def rows(value) -> list[dict]:
    """The rows of a table or frame an output carries."""
    return value.to_dicts() if hasattr(value, "to_dicts") else value.to_pylist()


_SINKS: dict[str, list] = {}


def run_stream(stream: EventScript, *, seeds=()) -> dict[str, list]:
    """Run StockEvents + RunningPosition + WindowPositionChanges over `stream`, streaming."""
    opts = PipelineOptions()
    opts.view_as(StandardOptions).streaming = True
    names = ("movements", "quarantine", "updates", "changes", "alerts")
    for n in names:
        _SINKS[n] = []
    with beam.Pipeline(runner="DirectRunner", options=opts) as p:
        raw_events = p | "Events" >> stream
        events = raw_events | "StockEvents" >> StockEvents(params=PARAMS, spec=SPEC, crosswalks=XW)
        seed_pc = p | "Seeds" >> beam.Create(list(seeds))
        pos = {"seeds": seed_pc, "movements": events["movements"], "availability": events["availability"]} | "Position" >> RunningPosition(
            params=PARAMS, items=ITEMS, crosswalks=XW
        )
        changes = pos["updates"] | "Changes" >> WindowPositionChanges(params=PARAMS)
        for name, pc in (("movements", events["movements"]), ("quarantine", events["quarantine"]), ("updates", pos["updates"]), ("changes", changes), ("alerts", pos["alerts"])):
            pc | f"Collect{name}" >> beam.Map(collect, name=name)
    return {n: list(_SINKS[n]) for n in names}


def collect(x, *, name: str):
    # The DirectRunner runs in this process: a module-level sink is fine for tests only.
    # The transforms pass pyarrow Tables (micro-batches); the assertions look at their rows.
    _SINKS.setdefault(name, []).extend(x.to_pylist() if isinstance(x, pa.Table) else [x])


def collected(name: str) -> list:
    return list(_SINKS.get(name, []))


def reset(*names: str) -> None:
    for n in names:
        _SINKS[n] = []


def script() -> EventScript:
    return EventScript().advance_watermark_to(Timestamp(micros=us("09:00")))


def panes(out, hhmm: str) -> list[tuple[str, int, int, int]]:
    start = dt.datetime.fromisoformat(at(hhmm))
    rows_ = sorted((r for r in out["changes"] if r["window_start"] == start), key=lambda r: r["pane_index"])
    return [(r["pane_timing"], r["pane_index"], r["events"], r["on_hand_change"]) for r in rows_]
