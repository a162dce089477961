"""Decoding and canonicalizing payloads: the batch's kernels, rejects with their raw text."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.transforms.stream import CanonicalizeEvents, RawChunk, decode_chunk
from tests.transforms.stream.helpers import PARAMS, SPEC, XW, availability, chunk, ev, raw, rows, run_stream, script


def test_decode_chunk_isolates_broken_lines_and_keeps_order():
    good = [ev(f"g{i}", "sale", "10:00", 1) for i in range(100)]
    texts = good[:40] + ['{"event_id": "x", "item": "not an object", "qty": 1}', '{"event_id": "BROKEN"'] + good[40:]
    parsed, rejected = decode_chunk(RawChunk(texts, "file:///e.jsonl", list(range(1, len(texts) + 1))))
    assert parsed.sort("_seq")["event_id"].to_list() == [f"g{i}" for i in range(100)]
    assert sorted(rejected["code"].to_list()) == ["malformed_event", "missing_field"]
    assert all(r.startswith("file:///e.jsonl: line 4") for r in rejected["reason"].to_list())


def test_malformed_and_unmapped_go_to_quarantine_with_raw_payload():
    bad = '{"event_id": "BROKEN-1", "event_type": "sale", "occurred_at": '
    unmapped = ev("u1", "sale", "10:01", 1, item="999999")
    s = script().add_elements([raw(bad, 1), raw(unmapped, 2), raw(ev("ok", "sale", "10:02", 1), 3)]).advance_watermark_to_infinity()
    out = run_stream(s)
    got = {q["reason_code"]: q for q in out["quarantine"]}
    assert set(got) == {"malformed_event", "unmapped_sku"}
    assert got["malformed_event"]["raw"] == bad and got["malformed_event"]["locator"] == "message 1"
    assert got["unmapped_sku"]["raw"] == unmapped
    assert [m["event_id"] for m in out["movements"]] == ["ok"]


def test_canonicalize_events_splits_movements_figures_and_rejects():
    """CanonicalizeEvents alone: a chunk's movements (canonical sku, location, signed eaches),
    availability figures and rejects leave through their own outputs."""
    bad = '{"event_id": "BROKEN"'
    texts = [ev("c1", "sale", "10:00", 2), availability("A1", "10:05", 9), bad, ev("u1", "sale", "10:01", 1, item="999999"),
             ev("c2", "count", "10:10", 30)]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([chunk(*texts)]) | "Canonicalize" >> CanonicalizeEvents(params=PARAMS, spec=SPEC, crosswalks=XW)
        movements = out["movements"] | "MovementRows" >> beam.FlatMap(
            lambda t: [(r["event_id"], r["event_type"], r["sku"], r["location"], r["qty"], r["locator"]) for r in rows(t)])
        figures = out["availability"] | "FigureRows" >> beam.FlatMap(
            lambda t: [(r["event_id"], r["system"], r["sku"], r["location"], r["qty"]) for r in rows(t)])
        rejects = out["quarantine"] | "RejectRows" >> beam.FlatMap(
            lambda t: [(r["reason_code"], r["locator"], r["raw"]) for r in rows(t)])
        assert_that(movements, equal_to([("c1", "sale", "SKU000003", "S0001", -2, "message 1"),
                                         ("c2", "count", "SKU000003", "S0001", 30, "message 5")]), label="CheckMovements")
        assert_that(figures, equal_to([("A1", "commerce", "SKU000003", "DC01", 9)]), label="CheckFigures")
        assert_that(rejects, equal_to([("malformed_event", "message 3", bad), ("unmapped_sku", "message 4", texts[3])]), label="CheckRejects")
