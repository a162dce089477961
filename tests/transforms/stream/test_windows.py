"""Windowed position changes: early panes while a window is open, the on-time pane, late revisions."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from invrecon.transforms.stream import WindowPositionChanges
from tests.transforms.stream.helpers import PARAMS, ev, panes, raw, rows, run_stream, script, us


def test_watermark_emits_windows_and_early_panes():
    s = (
        script()
        .add_elements([raw(ev("w1", "sale", "10:01", 1), 1)])
        .advance_processing_time(120)  # early firing after 60 s of processing time
        .add_elements([raw(ev("w2", "sale", "10:03", 1), 2)])
        .advance_watermark_to(Timestamp(micros=us("10:16")))
        .add_elements([raw(ev("w3", "sale", "10:20", 1), 3)])
        .advance_watermark_to(Timestamp(micros=us("10:31")))
        .advance_watermark_to_infinity()
    )
    out = run_stream(s)
    first = panes(out, "10:00")
    assert first[-1] == ("ON_TIME", len(first) - 1, 2, -2)
    assert all(t == "EARLY" for t, *_ in first[:-1]) and len(first) >= 2
    assert panes(out, "10:15")[-1][0] == "ON_TIME"


def _updates(*rows_: tuple) -> pa.Table:
    """An updates table as RunningPosition emits it: (sku, location, event_id, hh:mm, on_hand change, on_hand)."""
    return pa.table({
        "sku": [r[0] for r in rows_], "location": [r[1] for r in rows_], "event_id": [r[2] for r in rows_],
        "event_type": ["sale"] * len(rows_), "occurred_at": [us(r[3]) for r in rows_],
        "on_hand_change": [r[4] for r in rows_], "reserved_change": [0] * len(rows_), "on_hand": [r[5] for r in rows_],
        "reserved": [0] * len(rows_), "seeded": [True] * len(rows_),
    })


def test_window_position_changes_on_a_replay_sums_each_window_once():
    """WindowPositionChanges alone (one pane per window, as a bounded replay runs it): per (window,
    sku, location) the changes summed over batches, the events, and the position after the latest."""
    batches = [
        _updates(("A", "S1", "u1", "10:01", -1, 9), ("A", "S1", "u3", "10:20", -3, 5), ("B", "S1", "u4", "10:14", 2, 2)),
        _updates(("A", "S1", "u2", "10:07", -1, 8)),
    ]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        changes = p | beam.Create(batches) | "Changes" >> WindowPositionChanges(params=PARAMS, early_panes=False)
        got = changes | "ChangeRows" >> beam.FlatMap(lambda t: [
            (r["window_start"].strftime("%H:%M"), r["window_end"].strftime("%H:%M"), r["sku"], r["location"], r["on_hand_change"],
             r["events"], r["on_hand_after"], r["pane_index"], r["run_id"], r["_date"]) for r in rows(t)])
        assert_that(got, equal_to([
            ("10:00", "10:15", "A", "S1", -2, 2, 8, 0, "t", "2026-11-30"),
            ("10:00", "10:15", "B", "S1", 2, 1, 2, 0, "t", "2026-11-30"),
            ("10:15", "10:30", "A", "S1", -3, 1, 5, 0, "t", "2026-11-30"),
        ]), label="CheckChanges")
