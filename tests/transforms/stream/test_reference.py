"""The per-event reference path: one payload parsed at a time, one position kept one movement at a time."""

from __future__ import annotations

from invrecon.transforms.stream import PositionBook, RawEvent, parse_raw_event
from tests.transforms.stream.helpers import at, ev


def test_parse_quarantines_malformed_with_raw_payload():
    text = '{"event_id": "BROKEN-1", "event_type": "sale", "occurred_at": '
    fields, ts, q = parse_raw_event(RawEvent(text, "file:///e.jsonl", "line 7"), timezone="UTC", source="stock_events")
    assert fields is None and ts is None
    assert q["reason_code"] == "malformed_event" and q["raw"] == text
    assert q["reason"].startswith("file:///e.jsonl: line 7: not valid JSON")
    _, _, q = parse_raw_event(RawEvent(ev("e1", "sale", "10:00", 1).replace(at("10:00"), "soon"), None, "line 2"), timezone="UTC", source="s")
    assert q["reason_code"] == "bad_timestamp" and "field occurred_at" in q["reason"]


def test_position_book_out_of_order_counts_and_compaction():
    b = PositionBook()
    b.seed(on_hand=10, reserved=1, as_of=100)
    assert b.apply(ts=90, qty=-4, reserved_delta=0, is_count=False) == (0, 0)  # already in the seed
    assert b.apply(ts=300, qty=-2, reserved_delta=0, is_count=False) == (-2, 0)
    assert b.apply(ts=200, qty=7, reserved_delta=0, is_count=True) == (-3, 0)  # count before the sale
    assert b.on_hand == 5
    assert b.apply(ts=150, qty=-1, reserved_delta=2, is_count=False) == (0, 2)  # before the count
    b.compact(before=400)
    assert (b.on_hand, b.reserved, b.pending) == (5, 3, [])
    assert b.apply(ts=500, qty=1, reserved_delta=0, is_count=False) == (1, 0)
