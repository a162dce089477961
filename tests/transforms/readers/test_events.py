"""Stock-event reader: the columnar fast path equals the per-line path, line numbers stay exact."""

from __future__ import annotations

import json

import polars as pl
import pytest

from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.readers import events
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.readers.events import read_events
from tests.conftest import WORLD

SPEC = SourceSpec(name="stock_events", kind="events", system=None, timezone="America/Chicago")


@pytest.fixture(scope="module")
def crosswalks():
    return load_crosswalks(str(WORLD / "crosswalk/sku.csv"), str(WORLD / "crosswalk/location.csv"))


def _collect(results):
    mv = pl.concat([pl.from_arrow(r.movements) for r in results if r.movements is not None and r.movements.num_rows])
    q = pl.concat([pl.from_arrow(r.quarantine) for r in results if r.quarantine is not None and r.quarantine.num_rows])
    return mv.sort("locator"), q.sort("locator"), sum(r.read for r in results)


def test_fast_and_per_line_paths_agree(tmp_path, crosswalks, monkeypatch):
    good = [ln for ln in (WORLD / "inputs/events/2026-11-30/events.jsonl").read_text().splitlines() if ln.startswith('{"event_id": "')]
    ev = json.loads(good[0])
    lines = good[:50] + ["", json.dumps({k: v for k, v in ev.items() if k != "qty"})] + good[50:100]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    fast = _collect(list(read_events(str(path), SPEC, crosswalks)))
    monkeypatch.setattr(events, "decode_event_chunk", lambda texts, positions: None)
    slow = _collect(list(read_events(str(path), SPEC, crosswalks)))
    assert fast[0].equals(slow[0]) and fast[2] == slow[2] == 101
    assert fast[1].select("locator", "reason_code", "reason").rows() == slow[1].select("locator", "reason_code", "reason").rows()
    assert fast[1]["locator"].to_list() == ["line 52"]  # the blank line 51 keeps its number


def test_one_malformed_line_is_quarantined_alone(tmp_path, crosswalks, monkeypatch):
    monkeypatch.setattr(events, "EVENT_CHUNK", 10)
    good = [ln for ln in (WORLD / "inputs/events/2026-11-30/events.jsonl").read_text().splitlines() if ln.startswith('{"event_id": "')][:30]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(good[:15] + ['{"event_id": '] + good[15:]) + "\n")
    mv, q, read = _collect(list(read_events(str(path), SPEC, crosswalks)))
    assert read == 31 and q.select("locator", "reason_code").rows() == [("line 16", "malformed_event")]
    assert mv.height + q.height == read  # conserved: every line is a movement or a quarantine row


def test_empty_optional_fields_read_the_same_on_both_paths():
    """`"uom": ""` and `"id_type": ""` take their defaults whether a line is decoded columnar or alone."""
    line = ('{"event_id": "e1", "event_type": "sale", "occurred_at": "2026-11-30T10:00:00+00:00", "location": "0001", '
            '"item": {"id_type": "", "id": "A"}, "qty": 2, "uom": ""}')
    texts = pl.Series([line] * 40)
    columnar, _ = events.decode_event_texts(texts, lambda i: f"line {i + 1}")
    alone, _ = events.parse_event(line, locator="line 1")
    assert columnar["id_type"].unique().to_list() == [alone["id_type"]] == ["sku"]
    assert columnar["uom"].unique().to_list() == [alone["uom"]] == ["EA"]
