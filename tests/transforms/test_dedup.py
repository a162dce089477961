"""DedupEvents on the in-process runner: the first occurrence of an event_id is kept, repeats are quarantined."""

from __future__ import annotations

import datetime as dt
import pathlib

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.schemas import MOVEMENT
from invrecon.transforms.dedup import DedupEvents

AT = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)


def _event(event_id: str, file: str, line: int, qty: int) -> dict:
    base = {f.name: None for f in MOVEMENT}
    return {**base, "event_id": event_id, "system": "store", "event_type": "sale", "sku": "A", "location": "S1", "qty": qty,
            "reserved_delta": 0, "occurred_at": AT, "source": "events", "file": file, "locator": f"line {line}"}


def _tables() -> list[pa.Table]:
    # Two files read as three batches; E1 is in both files, E2 twice in one (lines 9 and 10: a
    # number, not text, orders them).
    b1 = [_event("E1", "b.jsonl", 2, -1), _event("E2", "b.jsonl", 10, -5)]
    b2 = [_event("E2", "b.jsonl", 9, -4), _event("E3", "b.jsonl", 11, -1)]
    a1 = [_event("E1", "a.jsonl", 3, -2)]
    return [pa.Table.from_pylist(rows, schema=MOVEMENT) for rows in (b1, b2, a1)]


@pytest.mark.parametrize("spill", [False, True], ids=["runner-shuffle", "spilled"])
def test_duplicates_are_quarantined_with_a_reason_and_the_first_is_kept(tmp_path: pathlib.Path, spill: bool):
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(_tables()) | "DedupEvents" >> DedupEvents(
            buckets=3, run_id="r1", spill=str(tmp_path / "shuffle") if spill else None)
        kept = out.movements | "KeptRows" >> beam.FlatMap(lambda t: [(r["event_id"], r["file"], r["locator"], r["qty"]) for r in t.to_pylist()])
        quarantined = out.quarantine | "QuarantineRows" >> beam.FlatMap(
            lambda t: [(r["run_id"], r["source"], r["file"], r["locator"], r["reason_code"], r["reason"]) for r in t.to_pylist()])
        assert_that(kept, equal_to([
            ("E1", "a.jsonl", "line 3", -2),
            ("E2", "b.jsonl", "line 9", -4),
            ("E3", "b.jsonl", "line 11", -1),
        ]), label="CheckKept")
        assert_that(quarantined, equal_to([
            ("r1", "events", "b.jsonl", "line 2", "duplicate_event", "event_id E1 was already read; counted once"),
            ("r1", "events", "b.jsonl", "line 10", "duplicate_event", "event_id E2 was already read; counted once"),
        ]), label="CheckQuarantine")


def test_configuration_is_keyword_only_and_checked():
    with pytest.raises(ValueError, match="buckets"):
        DedupEvents(buckets=0, run_id="r1")
    with pytest.raises(TypeError):
        DedupEvents(4, "r1")  # type: ignore[misc]
