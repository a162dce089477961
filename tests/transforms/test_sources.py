"""Source readers: the events fast path equals the per-line path, line numbers stay exact."""

from __future__ import annotations

import json

import polars as pl
import pytest

from invrecon.transforms import sources
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.sources import SourceSpec, read_events
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
    monkeypatch.setattr(sources, "decode_event_chunk", lambda texts, positions: None)
    slow = _collect(list(read_events(str(path), SPEC, crosswalks)))
    assert fast[0].equals(slow[0]) and fast[2] == slow[2] == 101
    assert fast[1].select("locator", "reason_code", "reason").rows() == slow[1].select("locator", "reason_code", "reason").rows()
    assert fast[1]["locator"].to_list() == ["line 52"]  # the blank line 51 keeps its number


def test_one_malformed_line_is_quarantined_alone(tmp_path, crosswalks, monkeypatch):
    monkeypatch.setattr(sources, "EVENT_CHUNK", 10)
    good = [ln for ln in (WORLD / "inputs/events/2026-11-30/events.jsonl").read_text().splitlines() if ln.startswith('{"event_id": "')][:30]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(good[:15] + ['{"event_id": '] + good[15:]) + "\n")
    mv, q, read = _collect(list(read_events(str(path), SPEC, crosswalks)))
    assert read == 31 and q.select("locator", "reason_code").rows() == [("line 16", "malformed_event")]
    assert mv.height + q.height == read  # conserved: every line is a movement or a quarantine row


def _lines_one_by_one(data: bytes) -> list[tuple[int, str]]:
    """The reference: Python's own line iteration, decoded and stripped line by line."""
    import io

    out = []
    for n, line in enumerate(io.BytesIO(data), start=1):
        text = line.decode("utf-8", errors="replace").strip()
        if n == 1:
            text = text.lstrip("\ufeff")
        if text:
            out.append((n, text))
    return out


def test_line_chunks_are_the_lines_python_reads_whatever_the_blocks():
    """BOMs, CRLF, blank and whitespace-only lines, broken UTF-8, no final newline, any block size."""
    import io
    import random

    rng = random.Random(3)
    pieces = [b'{"a": 1}', b"", b"  ", b"\r", b"\x1c", b"\xff\xfe bad", b"\xc3", b"\xc3\xa9t\xc3\xa9", b"\xef\xbb\xbf{x}", b"\t{y}\t",
              "\u2028z\u3000".encode()]
    for _ in range(150):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) + rng.choice([b"", b"\n"])
        data = rng.choice([b"", b"\xef\xbb\xbf"]) + data
        want = _lines_one_by_one(data)
        for chunk, block in ((1, 1), (3, 7), (100, 2), (100, 1 << 20)):
            got = list(sources.iter_line_chunks(io.BytesIO(data), chunk=chunk, block_bytes=block))
            assert [(n, t) for ns, ts in got for n, t in zip(ns.to_list(), ts.to_list())] == want
            assert all(len(ns) == chunk for ns, _ in got[:-1]) and all(0 < len(ns) <= chunk for ns, _ in got)


def test_empty_optional_fields_read_the_same_on_both_paths():
    """`"uom": ""` and `"id_type": ""` take their defaults whether a line is decoded columnar or alone."""
    line = ('{"event_id": "e1", "event_type": "sale", "occurred_at": "2026-11-30T10:00:00+00:00", "location": "0001", '
            '"item": {"id_type": "", "id": "A"}, "qty": 2, "uom": ""}')
    texts = pl.Series([line] * 40)
    columnar, _ = sources.decode_event_texts(texts, lambda i: f"line {i + 1}")
    alone, _ = sources.parse_event(line, locator="line 1")
    assert columnar["id_type"].unique().to_list() == [alone["id_type"]] == ["sku"]
    assert columnar["uom"].unique().to_list() == [alone["uom"]] == ["EA"]


def test_repeats_are_found_across_batches_and_name_the_first_occurrence():
    """`_Repeats` (sorted hashes, binary search) keeps each row's first occurrence, batch sizes aside."""
    import numpy as np

    rng = np.random.default_rng(3)
    for _ in range(30):
        rows, repeats, line, kept, first_of = rng.integers(0, 40, 300), sources._Repeats("line"), 0, [], {}
        while line < len(rows):
            part = rows[line:line + int(rng.integers(1, 50))]
            df = pl.DataFrame({"_raw": pl.Series(part).cast(pl.String), "_line": np.arange(line + 1, line + 1 + len(part)),
                               "_file": "f", "_locator": [f"line {n}" for n in range(line + 1, line + 1 + len(part))]})
            rejected: list[pl.DataFrame] = []
            kept += repeats.reject(df, rejected)["_line"].to_list()
            for k, v in enumerate(part, start=line + 1):
                first_of.setdefault(v, k)
            for q in rejected:
                for loc, reason in q.select("locator", "reason").iter_rows():
                    n = int(loc.split()[1])
                    assert reason == f"line {n} repeats line {first_of[rows[n - 1]]} in every column; counted once"
            line += len(part)
        assert kept == sorted(first_of.values())
