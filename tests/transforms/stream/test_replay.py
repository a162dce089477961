"""A replayed file: each line carries the bus clock it arrived at (the latest published_at so far)."""

from __future__ import annotations

import json
import re

from invrecon.transforms.stream.params import NO_TIME
from invrecon.transforms.stream.raw import event_time_micros
from invrecon.transforms.stream.reference import read_event_lines
from invrecon.transforms.stream.replay import bus_clock
from tests.transforms.stream.helpers import at, ev, us


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
