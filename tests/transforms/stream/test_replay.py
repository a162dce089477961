"""A replayed file: each line carries the bus clock it arrived at (the latest published_at so far)."""

from __future__ import annotations

import json
import re

import numpy as np

from invrecon.transforms.stream.params import NO_TIME
from invrecon.transforms.stream.raw import event_time_micros
from invrecon.transforms.stream.replay import bus_clock, clock_list, read_event_chunks
from tests.transforms.stream.helpers import at, ev, us


def test_bus_clock_equals_a_line_by_line_reading():
    """The columnar clock (literal scan, regex fallback, any timestamp shape) is the per-line one."""
    published, occurred = re.compile(r'"published_at"\s*:\s*"([^"]+)"'), re.compile(r'"occurred_at"\s*:\s*"([^"]+)"')
    lines = ['{"published_at": "2026-11-30T10:00:00+00:00", "occurred_at": "2026-11-30T09:00:00+00:00"}',
             '{"published_at" : "2026-11-30T10:05:00Z"}', '{"occurred_at": "2026-11-30T11:00:00"}', '{"published_at": ""}', "garbage",
             '{"occurred_at":"2026-11-30 12:00"}', '{"published_at": "2026-11-30T09:00:00+00:00"}',
             '{"published_at": "nonsense", "occurred_at": "2026-11-30T13:00:00+00:00"}',
             # non-ASCII before the field (polars finds bytes, slices characters), an unclosed value
             '{"reference": "café 日本 \ufffd", "published_at": "2026-12-01T05:00:00+00:00"}',
             '{"reference": "' + "é" * 81 + '", "published_at": "2026-12-01T05:30:00+00:00", "x": "2027-01-01T00:00:00+00:00"}',
             '{"published_at": "2026-12-30T00:00:00+00:00']
    want, clock = [], NO_TIME
    for text in lines:
        m = published.search(text) or occurred.search(text)
        t = event_time_micros(m.group(1), timezone="America/Chicago") if m else None
        clock = clock if t is None else max(clock, t)
        want.append(clock)
    assert bus_clock(lines, timezone="America/Chicago", carry=None).tolist() == want
    assert bus_clock(lines[2:], timezone="America/Chicago", carry=want[1]).tolist() == want[2:]


def test_read_event_chunks_cuts_the_non_blank_lines_and_carries_the_clock(tmp_path):
    """Chunks of `chunk` lines, numbered as in the file (blank lines skipped); the clock runs on
    across chunks; arrival ordinals order files by `file_index`, then lines."""
    lines = [{**json.loads(ev(f"e{i}", "sale", "10:00", 1)), "published_at": at(t)} for i, t in enumerate(["10:00", "10:20", "10:10"])]
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(lines[0]) + "\n\n" + "\n".join(json.dumps(x) for x in lines[1:]) + "\n")
    chunks = list(read_event_chunks(f"file://{path}", timezone="UTC", file_index=2, chunk=2))
    assert [list(c.numbers) for c in chunks] == [[1, 3], [4]]
    assert [json.loads(t)["event_id"] for c in chunks for t in c.texts] == ["e0", "e1", "e2"]
    assert [int(w) for c in chunks for w in c.replay_watermarks] == [us("10:00"), us("10:20"), us("10:20")]
    assert {(c.file, c.locators, c.arrival_base) for c in chunks} == {(f"file://{path}", None, 3 << 40)}


def test_clock_list_is_none_where_there_is_no_clock():
    assert clock_list(None, 2) == [None, None]
    assert clock_list(np.array([NO_TIME, 5, 7], dtype=np.int64), 3) == [None, 5, 7]
    assert clock_list([None, 9], 2) == [None, 9]
