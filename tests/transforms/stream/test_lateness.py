"""The lateness gate: an event is applied until its window's allowed lateness has passed, then quarantined."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from invrecon.transforms.stream import GateLateEvents, window_expiry
from tests.transforms.stream.helpers import PARAMS, canonical, ev, panes, raw, rows, run_stream, script, us


def test_window_expiry():
    end, expiry = window_expiry(us("10:05"), window_seconds=900, lateness_seconds=600)
    assert (end, expiry) == (us("10:15"), us("10:25"))
    assert window_expiry(us("10:15"), window_seconds=900, lateness_seconds=0)[0] == us("10:30")


def test_late_within_lateness_updates_the_pane_beyond_is_quarantined():
    s = (
        script()
        .add_elements([raw(ev("l1", "sale", "10:02", 1), 1)])
        .advance_watermark_to(Timestamp(micros=us("10:20")))  # on-time pane of [10:00, 10:15)
        .add_elements([raw(ev("l2", "sale", "10:05", 2), 2)])  # late, within lateness (until 10:25)
        .advance_watermark_to(Timestamp(micros=us("10:30")))
        .add_elements([raw(ev("l3", "sale", "10:06", 4), 3)])  # beyond lateness
        .advance_watermark_to_infinity()
    )
    out = run_stream(s)
    assert sorted(m["event_id"] for m in out["movements"]) == ["l1", "l2"]
    late = [q for q in out["quarantine"] if q["reason_code"] == "late_event"]
    assert [q["locator"] for q in late] == ["message 3"]
    assert json.loads(late[0]["raw"])["event_id"] == "l3" and "window closed at" in late[0]["reason"]
    # The watermark emitted the window with l1 alone; l2 revised it in a LATE pane.
    assert panes(out, "10:00") == [("ON_TIME", 0, 1, -1), ("LATE", 1, 2, -3)]


def test_gate_late_events_on_a_replay_judges_by_the_replay_clock():
    """GateLateEvents alone (bounded): an event whose line arrived (bus clock `_wm`) after its
    window's expiry is late_event; the others pass, without the raw text."""
    texts = [ev("g1", "sale", "10:05", 1), ev("g2", "sale", "10:06", 2), ev("g3", "sale", "10:20", 3)]
    movements, _, _ = canonical(*texts, clock=[us("10:20"), us("10:30"), us("10:30")])  # g2's window closed at 10:25
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([movements]) | "Gate" >> GateLateEvents(params=PARAMS, bounded=True)
        admitted = out["movements"] | "AdmittedRows" >> beam.FlatMap(lambda t: [(r["event_id"], r["_ts"], "_raw" in r) for r in rows(t)])
        late = out["quarantine"] | "LateRows" >> beam.FlatMap(lambda t: [(r["reason_code"], r["locator"], r["reason"], r["_date"]) for r in rows(t)])
        assert_that(admitted, equal_to([("g1", us("10:05"), False), ("g3", us("10:20"), False)]), label="CheckAdmitted")
        assert_that(late, equal_to([(
            "late_event", "message 2",
            "pubsub://test: message 2: event_id g2 occurred at 2026-11-30T10:06:00+00:00; its window closed at "
            "2026-11-30T10:25:00+00:00 (allowed lateness 10 min); the nightly batch applies it",
            "2026-11-30",
        )]), label="CheckLate")
