"""Read a replayed JSON Lines file as RawChunks, each line stamped with the bus clock it arrived at.

The file is in publish order, so the bus clock when line n arrived is the latest `published_at`
(else `occurred_at`) of lines 1..n: a bounded replay gates lateness by that clock, as the live bus
would have by its watermark.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import fsspec
import numpy as np
import polars as pl

from invrecon.transforms.canonical import parse_timestamps
from invrecon.transforms.readers.events import EVENT_CHUNK
from invrecon.transforms.stream.params import NO_TIME
from invrecon.transforms.stream.raw import RawChunk, event_time_micros
from invrecon.transforms.textfiles import iter_line_chunks

# The readers' logger: its DEBUG records' `files_read` / `records_read` feed the live progress line
# of a replay run in this process (`pipelines.progress`), as the batch's readers do.
log = logging.getLogger("invrecon.ingest")

__all__ = ["bus_clock", "clock_list", "read_event_chunks"]

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


def bus_clock(texts: list[str] | pl.Series, *, timezone: str, carry: int | None) -> np.ndarray:
    """Running max (µs) of `published_at` (else `occurred_at`) over the lines, after `carry`.

    `NO_TIME` stands for "no clock yet".

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
        t = np.array([NO_TIME if x is None else x for x in t], dtype=np.int64)
    return np.maximum.accumulate(np.concatenate([[NO_TIME if carry is None else carry], t]))[1:]


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
            wms = bus_clock(texts, timezone=timezone, carry=clock)
            clock = int(wms[-1])
            log.debug("%s: %d events read", uri, len(texts), extra={"records_read": len(texts)})
            yield RawChunk(texts, uri, numbers, None, wms, base)
    log.debug("%s: file read", uri, extra={"files_read": 1})


def clock_list(wms, n: int) -> list[int | None]:
    """A chunk's replay clock as a list of µs, None where there is none (live, or no clock yet)."""
    if wms is None:
        return [None] * n
    return [None if x is None or x == NO_TIME else int(x) for x in (wms.tolist() if isinstance(wms, np.ndarray) else wms)]
