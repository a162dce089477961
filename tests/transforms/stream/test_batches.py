"""Tables between keyed steps: ArrowBatch crosses a shuffle as Arrow IPC; hash buckets; arrival order."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from invrecon.transforms.coders import TableCoder
from invrecon.transforms.stream.batches import (
    ArrowBatch,
    ArrowBatchCoder,
    as_frame,
    in_arrival_order,
    merge_in_arrival_order,
    min_time,
    split_by_id_bucket,
    split_by_key_bucket,
    stable_bucket,
    with_key_bucket,
)
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


def _moves(*rows_: tuple[str, str, str, int]) -> pa.Table:
    """Movement rows (event_id, sku, location, arrival) with the columns the keyed steps read."""
    n = len(rows_)
    return pa.table({"event_id": [r[0] for r in rows_], "sku": [r[1] for r in rows_], "location": [r[2] for r in rows_],
                     "event_type": ["sale"] * n, "system": ["store"] * n, "qty": [-1] * n, "reserved_delta": [0] * n,
                     "file": ["f"] * n, "locator": [f"line {r[3]}" for r in rows_], "_ts": [100 * r[3] for r in rows_],
                     "_arrival": [r[3] for r in rows_], "_raw": ["{}"] * n})


MOVES = _moves(("e1", "A", "S1", 1), ("e2", "B", "S1", 2), ("e1", "A", "S2", 3), ("e3", "A", "S1", 4))


def test_split_by_key_bucket_keeps_a_key_in_one_bucket_and_only_what_position_reads():
    parts = dict(split_by_key_bucket(MOVES, buckets=4, tag="f"))
    assert sum(b.table.num_rows for b in parts.values()) == 4 and {b.tag for b in parts.values()} == {"f"}
    for bucket, batch in parts.items():
        keys = list(zip(batch.table["sku"].to_pylist(), batch.table["location"].to_pylist()))
        assert all(stable_bucket([f"{s}\x1f{loc}"], 4) == [bucket] for s, loc in keys)
        assert "_raw" not in batch.table.schema.names and "event_id" in batch.table.schema.names
    ((only, whole),) = split_by_key_bucket(MOVES, buckets=1)
    assert only == 0 and whole.table.num_rows == 4
    assert with_key_bucket(as_frame(MOVES), 4)["_b"].to_list() == [
        stable_bucket([f"{s}\x1f{loc}"], 4)[0] for s, loc in [("A", "S1"), ("B", "S1"), ("A", "S2"), ("A", "S1")]]


def test_split_by_id_bucket_keeps_an_event_id_in_one_bucket():
    parts = dict(split_by_id_bucket(MOVES, buckets=4))
    assert sum(b.table.num_rows for b in parts.values()) == 4
    assert all(stable_bucket(b.table["event_id"].to_pylist(), 4) == [k] * b.table.num_rows for k, b in parts.items())
    assert [(k, b.table.num_rows) for k, b in split_by_id_bucket(MOVES, buckets=1)] == [(0, 4)]


def test_batches_merge_in_arrival_order_and_are_stamped_at_the_earliest_event():
    late, early = MOVES.slice(2), MOVES.slice(0, 2)
    key, merged = merge_in_arrival_order((7, [ArrowBatch(late), ArrowBatch(early)]))
    assert key == 7 and merged["_arrival"].to_list() == [1, 2, 3, 4]
    assert in_arrival_order([as_frame(early)]).equals(as_frame(early))
    assert min_time(late).micros == 300
    frame = as_frame(early)
    assert as_frame(ArrowBatch(early)).equals(frame) and as_frame(frame) is frame
