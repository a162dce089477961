"""Beam coders of the columnar elements: Arrow tables and polars frames travel as Arrow IPC.

An element typed `Any` gets Beam's fallback coder, which pickles. Worse, Beam measures every
PCollection by *encoding* its first ten elements and a sample after that (the element-size
counters of `opcounters.py`). A pipeline that moves a few big tables instead of many rows has
most of its elements among those first ten, so each table was pickled once just to be weighed:
about a fifth of a stream replay's time. `TableCoder` weighs a table by its Arrow buffers, and
encodes it as (lz4-compressed) Arrow IPC when it really crosses a boundary.

Registered for `pa.Table` and `pl.DataFrame`: a step whose output is typed so (by
`with_output_types`, tagged outputs included) gets it.

    >>> import pyarrow as pa
    >>> t = pa.table({"sku": ["A", None], "qty": [1, -2]})
    >>> TableCoder().decode(TableCoder().encode(t)).equals(t)
    True
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa

__all__ = ["IPC_OPTIONS", "TableCoder", "ipc_bytes", "read_ipc", "table_nbytes"]

# JSON text and repeated ids compress ~10x, and a runner's shuffle copies every byte several times.
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")

_TABLE, _FRAME, _NONE = b"T", b"F", b"N"


def ipc_bytes(table: pa.Table) -> bytes:
    """One table as a compressed Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_ipc(buffer) -> pa.Table:
    """The table of an Arrow IPC stream (bytes or a pyarrow buffer)."""
    return pa.ipc.open_stream(buffer).read_all()


def table_nbytes(value: Any) -> int:
    """Bytes held by a table, a frame, None, or a tuple of them: cheap, no encoding."""
    if value is None:
        return 0
    if isinstance(value, pa.Table):
        return value.nbytes
    if isinstance(value, pl.DataFrame):
        return int(value.estimated_size())
    return sum(table_nbytes(v) for v in value)


class TableCoder(beam.coders.Coder):
    """A pa.Table, a pl.DataFrame, or a tuple of them (and None) as Arrow IPC streams.

    Layout: part count, tuple flag, one kind byte per part, padding to 8, one 8-byte size per
    part, then the parts, each padded to 8 so that Arrow's buffers stay aligned.
    """

    def encode(self, value) -> bytes:
        is_tuple = isinstance(value, tuple)
        kinds, blobs = [], []
        for v in value if is_tuple else (value,):
            if v is None:
                kinds.append(_NONE)
                blobs.append(b"")
            else:
                kinds.append(_FRAME if isinstance(v, pl.DataFrame) else _TABLE)
                blob = ipc_bytes(v.to_arrow() if isinstance(v, pl.DataFrame) else v)
                blobs.append(blob + b"\0" * (-len(blob) % 8))
        head = bytes([len(blobs), is_tuple]) + b"".join(kinds)
        head += b"\0" * (-len(head) % 8)
        return head + b"".join(len(b).to_bytes(8, "little") for b in blobs) + b"".join(blobs)

    def decode(self, encoded: bytes):
        n, is_tuple = encoded[0], encoded[1]
        kinds = encoded[2:2 + n]
        at = 2 + n + (-(2 + n) % 8)
        sizes = [int.from_bytes(encoded[at + 8 * i:at + 8 * i + 8], "little") for i in range(n)]
        buf, at, parts = pa.py_buffer(encoded), at + 8 * n, []
        for kind, size in zip(kinds, sizes):
            kind = bytes([kind])
            if kind == _NONE:
                parts.append(None)
            else:
                table = read_ipc(buf[at:at + size])
                parts.append(pl.from_arrow(table) if kind == _FRAME else table)
            at += size
        return tuple(parts) if is_tuple else parts[0]

    def estimate_size(self, value) -> int:
        return table_nbytes(value)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.Table


beam.coders.registry.register_coder(pa.Table, TableCoder)
beam.coders.registry.register_coder(pl.DataFrame, TableCoder)
