"""De-duplication by event_id: a repeat counts once, within the TTL; after it an id is new again."""

from __future__ import annotations

import apache_beam as beam
import polars as pl
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from invrecon.transforms.stream import DropRepeatedEvents
from invrecon.transforms.stream.batches import ArrowBatch, merge_in_arrival_order
from invrecon.transforms.stream.dedup import drop_repeats
from tests.transforms.stream.helpers import PARAMS, canonical, ev, raw, rows, run_stream, script, us


def test_duplicate_in_another_window_counts_once():
    s = (
        script()
        .add_elements([raw(ev("d1", "sale", "10:02", 3), 1)])
        .advance_watermark_to(Timestamp(micros=us("10:20")))  # window [10:00, 10:15) fired
        .add_elements([raw(ev("d1", "sale", "10:17", 3), 2), raw(ev("d2", "sale", "10:18", 1), 3)])  # same id, next window
        .advance_watermark_to_infinity()
    )
    out = run_stream(s)
    assert sorted(m["event_id"] for m in out["movements"]) == ["d1", "d2"]
    dup = [q for q in out["quarantine"] if q["reason_code"] == "duplicate_event"]
    assert len(dup) == 1 and dup[0]["locator"] == "message 2" and '"10:17' not in dup[0]["raw"] and "d1" in dup[0]["raw"]
    assert sum(u["on_hand_change"] for u in out["updates"]) == -4


def test_an_event_id_is_forgotten_after_its_ttl():
    """State per event_id expires: past occurred_at + TTL (2 h, rounded up to a window) an id is new again."""
    s = (
        script()
        .add_elements([raw(ev("x1", "sale", "10:02", 3), 1)])
        .advance_watermark_to(Timestamp(micros=us("11:00")))
        .add_elements([raw(ev("x1", "sale", "11:05", 3), 2)])  # within the TTL: a repeat
        .advance_watermark_to(Timestamp(micros=us("12:20")))  # past 10:02 + 2 h -> 12:15: forgotten
        .add_elements([raw(ev("x1", "sale", "12:25", 3), 3)])
        .advance_watermark_to_infinity()
    )
    out = run_stream(s)
    assert [m["locator"] for m in out["movements"] if m["event_id"] == "x1"] == ["message 1", "message 3"]
    assert [q["locator"] for q in out["quarantine"] if q["reason_code"] == "duplicate_event"] == ["message 2"]


def test_drop_repeated_events_on_a_replay_keeps_the_first_arrival():
    """DropRepeatedEvents alone (bounded): each id's first arrival is kept, across batches and
    buckets; a later one leaves as duplicate_event with its raw payload and its own locator."""
    first, _, _ = canonical(ev("d1", "sale", "10:02", 3), ev("d2", "sale", "10:03", 1))
    again, _, _ = canonical(ev("d1", "sale", "10:02", 3), ev("d3", "return", "10:04", 2), ev("d2", "sale", "10:03", 1), first=3)
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([first, again]) | "Dedup" >> DropRepeatedEvents(params=PARAMS, bounded=True)
        kept = out["movements"] | "KeptRows" >> beam.FlatMap(lambda df: [(r["event_id"], r["locator"]) for r in rows(df)])
        repeats = out["quarantine"] | "RepeatRows" >> beam.FlatMap(
            lambda t: [(r["reason_code"], r["locator"], r["reason"].endswith("was already applied; counted once"), r["raw"][:20]) for r in rows(t)])
        assert_that(kept, equal_to([("d1", "message 1"), ("d2", "message 2"), ("d3", "message 4")]), label="CheckKept")
        assert_that(repeats, equal_to([("duplicate_event", "message 3", True, ev("d1", "sale", "10:02", 3)[:20]),
                                       ("duplicate_event", "message 5", True, ev("d2", "sale", "10:03", 1)[:20])]), label="CheckRepeats")


def test_a_replay_bucket_repeating_ids_across_batches_quarantines_the_repeats():
    """A bounded replay merges a bucket's batches (several chunks per column); repeats among them
    leave as duplicate_event rows (this crashed in polars' format before the frame was rechunked)."""
    first = canonical(ev("d1", "sale", "10:02", 3), ev("d2", "sale", "10:03", 1))[0]
    again = canonical(ev("d1", "sale", "10:02", 3), ev("d3", "return", "10:04", 2), ev("d2", "sale", "10:03", 1), first=3)[0]
    _, merged = merge_in_arrival_order((0, [ArrowBatch(first), ArrowBatch(again)]))
    kept, repeats = drop_repeats(merged, PARAMS)
    assert kept["event_id"].to_list() == ["d1", "d2", "d3"]
    assert pl.from_arrow(repeats).select("reason_code", "locator", "reason").rows() == [
        ("duplicate_event", "message 3", "pubsub://test: message 3: event_id d1 was already applied; counted once"),
        ("duplicate_event", "message 5", "pubsub://test: message 5: event_id d2 was already applied; counted once"),
    ]
