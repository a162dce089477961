"""Carry raw payloads from the bus: `RawEvent` (one message), `RawChunk` (a batch, with its coder), event times.

A live source yields RawEvents, which `CanonicalizeEvents` gathers per bundle into RawChunks; a
replayed file is read straight into RawChunks (`transforms.stream.replay`).
"""

from __future__ import annotations

import datetime as dt
import pickle
import zoneinfo
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import polars as pl

from invrecon.transforms.stream.params import MICROS

__all__ = ["RawChunk", "RawChunkCoder", "RawEvent", "event_time_micros"]


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
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * MICROS + delta.microseconds


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
    replay_watermarks: list[int | None] | np.ndarray | None = None  # µs; NO_TIME or None: no clock
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
