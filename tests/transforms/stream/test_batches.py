"""Tables between keyed steps: ArrowBatch crosses a shuffle as Arrow IPC; state is Arrow too."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from invrecon.transforms.coders import TableCoder
from invrecon.transforms.stream.batches import ArrowBatch, ArrowBatchCoder, stable_bucket
from invrecon.transforms.stream.kernels import BOOKS_SCHEMA, PENDING_SCHEMA


def test_shuffled_batches_and_state_round_trip_through_their_coders():
    """ArrowBatch crosses a shuffle as Arrow IPC (re-encoded as the same bytes); state as Arrow too."""
    table = pa.table({"event_id": ["a", "b", None], "_raw": ['{"x": 1}', "é", ""], "_ts": [1, 2, 3]})
    coder = ArrowBatchCoder()
    wire = coder.encode(ArrowBatch(table, tag="f"))
    batch = coder.decode(wire)
    assert coder.encode(batch) == wire  # regrouping moves the bytes, no decode
    assert batch.tag == "f" and batch.table.equals(table)
    state = TableCoder()
    assert state.decode(state.encode(table)).equals(table)
    books = pl.DataFrame(schema=BOOKS_SCHEMA)
    pending = pl.DataFrame({"sku": ["s"], "location": ["l"], "ts": [5], "qty": [-2]}, schema=PENDING_SCHEMA)
    books2, pending2 = state.decode(state.encode((books, pending)))
    assert books2.schema == books.schema and books2.height == 0 and pending2.equals(pending)


def test_buckets_are_the_same_everywhere():
    """crc32: a release, a worker or a process cannot move a key to another bucket (its state)."""
    assert stable_bucket(["E-1", "E-2", "E-1"], 16) == [12, 6, 12]
