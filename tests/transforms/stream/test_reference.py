"""The per-event reference path: one payload parsed at a time, one position kept one movement at a time."""

from __future__ import annotations

import json

from invrecon.transforms.stream import PositionBook, RawEvent, parse_raw_event
from invrecon.transforms.stream.reference import read_event_lines
from tests.transforms.stream.helpers import at, ev, us


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


def test_replay_watermark_follows_published_at(tmp_path):
    lines = [
        {**json.loads(ev("a", "sale", "10:00", 1)), "published_at": at("10:00")},
        {**json.loads(ev("b", "sale", "10:20", 1)), "published_at": at("10:20")},
        {**json.loads(ev("c", "sale", "09:00", 1)), "published_at": at("11:00")},  # arrives late
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    got = list(read_event_lines(f"file://{path}", timezone="UTC"))
    assert [r.locator for r in got] == ["line 1", "line 2", "line 3"]
    assert [r.replay_watermark for r in got] == [us("10:00"), us("10:20"), us("11:00")]
