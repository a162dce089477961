"""The columnar position kernels: a batch applied at once gives what PositionBook gives one event at a time."""

from __future__ import annotations

import random

import polars as pl
import pytest

from invrecon.transforms.stream import PositionBook
from invrecon.transforms.stream.kernels import (
    BOOKS_SCHEMA,
    PENDING_SCHEMA,
    apply_movements,
    compact_pending,
    figures_at_arrival,
    new_books,
)


def _book_trace(events, seed):
    """Per event (on_hand_change, on_hand) by PositionBook, one event at a time (the reference)."""
    books: dict = {}
    out = []
    for sku, loc, ts, qty, is_count in events:
        b = books.get((sku, loc))
        if b is None:
            b = books[(sku, loc)] = PositionBook()
            if (sku, loc) in seed:
                b.seed(on_hand=seed[(sku, loc)], reserved=0, as_of=1_000)
        d, _ = b.apply(ts=ts, qty=qty, reserved_delta=0, is_count=is_count)
        out.append((d, b.on_hand))
    return out, {k: b.on_hand for k, b in books.items()}


def _moves(batch, i):
    return pl.DataFrame(
        {
            "sku": [e[0] for e in batch], "location": [e[1] for e in batch], "event_id": [f"e{i + j}" for j in range(len(batch))],
            "event_type": ["count" if e[4] else "adjustment" for e in batch], "system": ["store"] * len(batch),
            "file": ["f"] * len(batch), "locator": [f"line {i + j}" for j in range(len(batch))],
            "_ts": [e[2] for e in batch], "qty": [e[3] for e in batch], "reserved_delta": [0] * len(batch),
            "_arrival": list(range(i, i + len(batch))),
        }
    )


@pytest.mark.parametrize("seed_value", [0, 1, 2, 3, 4])
def test_columnar_positions_match_position_book(seed_value):
    """apply_movements over random batches = PositionBook applied event by event."""
    rng = random.Random(seed_value)
    keys = [("A", "S1"), ("A", "S2"), ("B", "S1")]
    seed = {("A", "S1"): 10}
    events = []
    for _ in range(300):
        sku, loc = rng.choice(keys)
        is_count = rng.random() < 0.15
        ts = rng.choice([rng.randint(0, 5_000), 900, 1_000, 2_000])  # ties with the seed and each other
        events.append((sku, loc, ts, rng.randint(0, 40) if is_count else rng.randint(-5, 5), is_count))
    expected, final = _book_trace(events, seed)
    books = new_books(pl.DataFrame(keys, schema=["sku", "location"], orient="row"),
                      {k: ("seed", {"on_hand": v, "reserved": 0, "as_of": 1_000}) for k, v in seed.items()})
    pending = pl.DataFrame(schema=PENDING_SCHEMA)
    got = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 60)
        batch = events[i:i + size]
        books, pending, updates = apply_movements(books.select(list(BOOKS_SCHEMA)), pending, _moves(batch, i))
        got += list(zip(updates["on_hand_change"].to_list(), updates["on_hand"].to_list()))
        i += size
    assert got == expected
    assert {(s, ln): oh + a for s, ln, oh, a in books.select("sku", "location", "base_oh", "after_oh").iter_rows()} == final


def test_compaction_folds_old_movements_without_moving_the_position():
    """compact_pending (PositionBook.compact per bucket): on_hand stays, the old movements leave pending."""
    books = new_books(pl.DataFrame([("A", "S1")], schema=["sku", "location"], orient="row"), {})
    books, pending, _ = apply_movements(books, pl.DataFrame(schema=PENDING_SCHEMA), _moves([("A", "S1", 100, 5, False), ("A", "S1", 900, -2, False)], 0))
    folded, left = compact_pending(books, pending, before=500)
    assert left.select("ts", "qty").rows() == [(900, -2)]
    assert folded.select(pl.col("base_oh") + pl.col("after_oh")).item() == 3 == books.select(pl.col("base_oh") + pl.col("after_oh")).item()


# polars cannot check the sortedness of an as-of join with `by` groups; both sides are sorted by arrival first.
@pytest.mark.filterwarnings("ignore:Sortedness of columns cannot be checked")
def test_a_figure_meets_the_position_of_the_movements_that_arrived_before_it():
    """figures_at_arrival: a figure that arrived before a batch's sale sees the position before
    the batch (10 on hand, 3 reserved: the seed); one after it sees the sale (8); a key never
    seeded nor counted has no base."""
    keys = pl.DataFrame([("A", "D1"), ("B", "D1")], schema=["sku", "location"], orient="row")
    books = new_books(keys, {("A", "D1"): ("seed", {"on_hand": 10, "reserved": 3, "as_of": 1_000})})
    _, _, updates = apply_movements(books, pl.DataFrame(schema=PENDING_SCHEMA), _moves([("A", "D1", 2_000, -2, False)], 5))
    figures = pl.DataFrame({"sku": ["A", "A", "B"], "location": ["D1"] * 3, "qty": [9, 9, 1], "_arrival": [7, 4, 6]})
    met = figures_at_arrival(books, updates, figures)
    assert met.select("_arrival", "qty", "on_hand_at", "reserved_at", "had_base").rows() == [
        (4, 9, 10, 3, True), (6, 1, 0, 0, False), (7, 9, 8, 3, True)]
    before = figures_at_arrival(books, None, figures)
    assert before["on_hand_at"].to_list() == [10, 0, 10]
