"""The streaming stock-event transforms behind `invrecon stream` (DESIGN.md §2, §5, §8), one module per step.

Raw event payloads (JSON text from Pub/Sub, Kafka or a replayed JSON Lines file) become canonical
movements, a running position per (sku, location), windowed position changes and alerts. The hot
path is columnar: events travel as `pyarrow.Table` micro-batches, and the keyed steps work on a
stable hash bucket of events at once instead of one event at a time (but for a live stream's
de-dup, whose state is per event_id, so that each event costs a point lookup):

    RawEvent (a message) ─BatchPayloads─▶ RawChunk ◀─ read_event_chunks (a replayed file)      raw, replay
      ──CanonicalizeChunks (decode_event_texts + canonical_events_frame, the batch's kernels)──▶  canonicalize
      ──DropRepeatedEvents (live: state + timer per event_id; replay: each bucket whole)──▶  dedup
      ──GateLateEvents (per position bucket and window: beyond allowed lateness ─▶ `late_event`)──▶  lateness
      ──RunningPosition (bucket of sku/location: positions in state, seeded from the snapshot)──▶  position
      ──WindowPositionChanges (fixed windows, early + late panes, per bucket)──▶ position changes  windows

`StockEvents` (events) chains the first three; `WriteParquetFiles` (sink) writes every output.
The other modules are the shared pieces: `params` (StreamParams, tags, columns), `batches` (tables
between keyed steps), `kernels` (the columnar position arithmetic), `alerts`, `quarantine` (reject
rows) and `reference` (the per-event path the tests and the bench compare with).

Every rejected payload leaves through the `quarantine` output with its raw text and a reason code
(`malformed_event`, `missing_field`, `bad_timestamp`, the canonical codes of
`transforms.readers.events.canonical_events_frame`, `duplicate_event`, `late_event`), so for any input
read = archived movements + reported figures + quarantined. Lateness has a worked example in
`transforms.stream.lateness`.

A bounded replay (`bounded=True`) runs the same steps on a batch runner, where the watermark only
moves at the end: it gathers each bucket's events into one batch (in arrival order) before the
keyed steps (so the de-dup needs no state), sets no expiry timers (its state ends with the run)
and gates by the replay clock.
"""

from __future__ import annotations

from invrecon.schemas import POSITION_CHANGES  # the stream's own output schema, re-exported where it was
from invrecon.transforms.stream.batches import stable_bucket
from invrecon.transforms.stream.canonicalize import CanonicalizeEvents, canonicalize_chunk, decode_chunk
from invrecon.transforms.stream.dedup import DropRepeatedEvents
from invrecon.transforms.stream.events import StockEvents
from invrecon.transforms.stream.kernels import apply_movements
from invrecon.transforms.stream.lateness import GateLateEvents, window_expiry
from invrecon.transforms.stream.params import (
    ALERTS_TAG,
    AVAILABILITY_TAG,
    MOVEMENTS_TAG,
    QUARANTINE_TAG,
    UPDATES_TAG,
    CrosswalkFiles,
    StreamParams,
)
from invrecon.transforms.stream.position import RunningPosition, seed_element
from invrecon.transforms.stream.quarantine import quarantine_row
from invrecon.transforms.stream.raw import RawChunk, RawEvent, event_time_micros
from invrecon.transforms.stream.reference import PositionBook, parse_raw_event, read_event_lines
from invrecon.transforms.stream.replay import read_event_chunks
from invrecon.transforms.stream.sink import STREAM_TABLES, WriteParquetFiles, as_position_row, as_position_table
from invrecon.transforms.stream.windows import WindowPositionChanges

__all__ = [
    "ALERTS_TAG",
    "AVAILABILITY_TAG",
    "MOVEMENTS_TAG",
    "POSITION_CHANGES",
    "QUARANTINE_TAG",
    "STREAM_TABLES",
    "UPDATES_TAG",
    "CanonicalizeEvents",
    "CrosswalkFiles",
    "DropRepeatedEvents",
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
