"""StockEvents: canonicalize, de-duplicate and gate; a file replay (bounded) and the live graph agree."""

from __future__ import annotations

import apache_beam as beam

from invrecon.transforms.stream import StockEvents, read_event_chunks
from tests.transforms.stream.helpers import PARAMS, SPEC, XW, collect, collected, ev, raw, reset, run_stream, script


def test_bounded_replay_equals_the_streaming_graph(tmp_path):
    """A file replay (bounded, batch runner) and the same lines as messages (TestStream) agree."""
    lines = [ev("r1", "sale", "10:01", 2), ev("r2", "count", "10:05", 30), ev("r1", "sale", "10:01", 2), ev("r3", "return", "10:20", 1),
             '{"event_id": "BROKEN"']
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    reset("bounded_movements", "bounded_quarantine")
    with beam.Pipeline(runner="FnApiRunner") as p:
        raw_chunks = p | beam.Create(list(read_event_chunks(f"file://{path}", timezone="UTC")))
        events = raw_chunks | StockEvents(params=PARAMS, spec=SPEC, crosswalks=XW, bounded=True)
        events["movements"] | "CollectM" >> beam.Map(collect, name="bounded_movements")
        events["quarantine"] | "CollectQ" >> beam.Map(collect, name="bounded_quarantine")
    s = script().add_elements([raw(t, n) for n, t in enumerate(lines, start=1)]).advance_watermark_to_infinity()
    out = run_stream(s)
    assert sorted(m["event_id"] for m in collected("bounded_movements")) == sorted(m["event_id"] for m in out["movements"]) == ["r1", "r2", "r3"]
    codes = sorted(q["reason_code"] for q in collected("bounded_quarantine"))
    assert codes == sorted(q["reason_code"] for q in out["quarantine"]) == ["duplicate_event", "malformed_event"]
