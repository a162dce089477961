"""Move tables between the stream's keyed steps: `ArrowBatch` and its coder, hash buckets, arrival order.

The keyed steps (de-dup, gate, position, changes) work on a stable hash bucket of events at once:
a table is split per bucket (`split_by_id_bucket`, `split_by_key_bucket`), crosses the shuffle as
compressed Arrow IPC (`ArrowBatchCoder`), and a bounded replay merges a bucket's batches back in
the order they arrived (`merge_in_arrival_order`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam.utils.timestamp import Timestamp

from invrecon.transforms.coders import ipc_bytes, read_ipc
from invrecon.transforms.stream.params import ARRIVAL, TS

__all__ = [
    "ArrowBatch",
    "ArrowBatchCoder",
    "as_frame",
    "in_arrival_order",
    "merge_in_arrival_order",
    "min_time",
    "split_by_id_bucket",
    "split_by_key_bucket",
    "stable_bucket",
    "with_key_bucket",
]

# Bytes before an ArrowBatch's IPC stream (tag length, tag, padding): 8 keeps Arrow's buffers aligned.
_HEADER = 8

# What RunningPosition reads of a movement or figure row: not the archive's other columns.
_POSITION_INPUT = (*("sku", "location"), "event_id", "event_type", "system", "qty", "reserved_delta", "file", "locator", TS, ARRIVAL)


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


def as_frame(value) -> pl.DataFrame:
    """A polars frame of an ArrowBatch, a pa.Table or a frame."""
    if isinstance(value, pl.DataFrame):
        return value
    return pl.from_arrow(value.table if isinstance(value, ArrowBatch) else value)


def min_time(table: pa.Table) -> Timestamp:
    """The earliest event time (`_ts`) of a movement table: what its element is stamped at."""
    return Timestamp(micros=int(pl.from_arrow(table.select([TS]))[TS].min()))


def stable_bucket(values: Iterable[str], buckets: int) -> list[int]:
    """Hash bucket of each value: crc32, the same on every worker, process and release.

    Example:
        >>> stable_bucket(["E-1", "E-2"], 16)
        [12, 6]
    """
    return [zlib.crc32(v.encode()) % buckets for v in values]


def with_key_bucket(df: pl.DataFrame, buckets: int, *, name: str = "_b") -> pl.DataFrame:
    """Add the bucket of (sku, location): hashed once per distinct key, joined to the rows."""
    keys = df.select("sku", "location").unique()
    b = stable_bucket((f"{s}\x1f{loc}" for s, loc in keys.iter_rows()), buckets)
    return df.join(keys.with_columns(pl.Series(name, b, dtype=pl.Int64)), on=["sku", "location"], how="left", maintain_order="left")


def split_by_id_bucket(table: pa.Table, *, buckets: int) -> Iterator[tuple[int, ArrowBatch]]:
    """(bucket of event_id, rows) of a movement table: the key of a bounded replay's de-dup."""
    if buckets == 1:
        yield 0, ArrowBatch(table)
        return
    df = pl.from_arrow(table)
    df = df.with_columns(pl.Series("_b", stable_bucket(df["event_id"].to_list(), buckets), dtype=pl.Int64))
    for (b,), part in df.partition_by("_b", as_dict=True, include_key=False).items():
        yield b, ArrowBatch(part.to_arrow())


def split_by_key_bucket(table: pa.Table, *, buckets: int, tag: str = "") -> Iterator[tuple[int, ArrowBatch]]:
    """(bucket of (sku, location), the columns RunningPosition reads) of a movement or figure table."""
    df = pl.from_arrow(table.select(list(_POSITION_INPUT)))
    if buckets == 1:
        yield 0, ArrowBatch(df.to_arrow(), tag=tag)
        return
    df = with_key_bucket(df, buckets)
    for (b,), part in df.partition_by("_b", as_dict=True, include_key=False).items():
        yield b, ArrowBatch(part.to_arrow(), tag=tag)


def merge_in_arrival_order(element: tuple[int, Iterable[ArrowBatch]]) -> tuple[int, pl.DataFrame]:
    """A bounded replay's batches of one bucket as one frame, in the order they arrived."""
    key, batches = element
    return key, in_arrival_order([as_frame(b) for b in batches])


def in_arrival_order(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames as one, sorted by arrival (no sort, which moves every string, when they already are)."""
    df = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    return df if df[ARRIVAL].is_sorted() else df.sort(ARRIVAL)
