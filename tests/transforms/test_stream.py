"""Streaming transforms: pure functions, and the graph driven by TestStream on the DirectRunner.

The TestStream cases use the committed world's crosswalks: store_item 500003 is SKU000003
(class B, safety stock 2), store 0001 is S0001 (a store: tolerance max(1, 2%)), commerce node FC01
is DC01. Windows are 15 minutes, allowed lateness 10 minutes, so window [10:00, 10:15) accepts
data until the watermark passes 10:25.
"""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp

from tests.conftest import WORLD
from invrecon.transforms.reconcile import Tolerance
from invrecon.transforms.sources import SourceSpec
from invrecon.transforms.stream import (
    PositionBook,
    RawEvent,
    RunningPosition,
    StockEvents,
    StreamParams,
    WindowPositionChanges,
    event_time_micros,
    parse_raw_event,
    read_event_lines,
    seed_element,
    window_expiry,
)

DAY = "2026-11-30"
UTC = dt.timezone.utc


def at(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+00:00"


def us(hhmm: str) -> int:
    return event_time_micros(at(hhmm), timezone="UTC")


def ev(event_id: str, event_type: str, hhmm: str, qty: int, *, system: str = "store", location: str = "0001", item: str = "500003") -> str:
    return json.dumps({
        "event_id": event_id, "event_type": event_type, "occurred_at": at(hhmm), "system": system,
        "location": location, "item": {"id_type": "store_item", "id": item}, "qty": qty, "uom": "EA",
    })


def raw(text: str, n: int) -> RawEvent:
    return RawEvent(text, "pubsub://test", f"message {n}", None)


# --- pure functions ---------------------------------------------------------------------------


def test_event_time_parses_offsets_and_local_time():
    assert event_time_micros("2026-11-30T12:00:00-06:00", timezone="UTC") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("2026-11-30T12:00:00", timezone="America/Chicago") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("30/11/2026", timezone="UTC") is None


def test_window_expiry():
    end, expiry = window_expiry(us("10:05"), window_seconds=900, lateness_seconds=600)
    assert (end, expiry) == (us("10:15"), us("10:25"))
    assert window_expiry(us("10:15"), window_seconds=900, lateness_seconds=0)[0] == us("10:30")


def test_parse_quarantines_malformed_with_raw_payload():
    text = '{"event_id": "BROKEN-1", "event_type": "sale", "occurred_at": '
    fields, ts, q = parse_raw_event(RawEvent(text, "file:///e.jsonl", "line 7"), timezone="UTC", source="stock_events")
    assert fields is None and ts is None
    assert q["reason_code"] == "malformed_event" and q["raw"] == text
    assert q["reason"].startswith("file:///e.jsonl: line 7: not valid JSON")
    _, _, q = parse_raw_event(RawEvent(ev("e1", "sale", "10:00", 1).replace(at("10:00"), "soon"), None, "line 2"), timezone="UTC", source="s")
    assert q["reason_code"] == "bad_timestamp" and "field occurred_at" in q["reason"]


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


def test_position_book_out_of_order_counts_and_compaction():
    b = PositionBook()
    b.seed(on_hand=10, reserved=1, as_of=100)
    assert b.apply(ts=90, qty=-4, reserved_delta=0, is_count=False) == (0, 0)  # already in the seed
    assert b.apply(ts=300, qty=-2, reserved_delta=0, is_count=False) == (-2, 0)
    assert b.apply(ts=200, qty=7, reserved_delta=0, is_count=True) == (-3, 0)  # count before the sale
    assert b.on_hand == 5
    assert b.apply(ts=150, qty=-1, reserved_delta=2, is_count=False) == (0, 2)  # before the count
    b.compact(before=400)
    assert (b.on_hand, b.reserved, b.pending) == (5, 3, [])
    assert b.apply(ts=500, qty=1, reserved_delta=0, is_count=False) == (1, 0)


def test_params_validation_names_the_field():
    with pytest.raises(ValueError, match="`window_minutes` must be > 0"):
        StreamParams(window_minutes=0)
    with pytest.raises(ValueError, match="`dedup_ttl_hours` must cover"):
        StreamParams(window_minutes=60, allowed_lateness_minutes=120, dedup_ttl_hours=1)


# --- TestStream on the DirectRunner ------------------------------------------------------------

PARAMS = StreamParams(
    window_minutes=15, allowed_lateness_minutes=10, early_firing_seconds=60, dedup_ttl_hours=2,
    record_system="erp", timezone="UTC", alert_systems=("store", "commerce"),
    tolerances=(Tolerance((("location_type", "store"),), 1, 0.02), Tolerance((), 0, 0)), run_id="t", gate_shards=2,
)
SPEC = SourceSpec(name="stock_events", kind="events", system=None, timezone="UTC")
XW = (str(WORLD / "crosswalk" / "sku.csv"), str(WORLD / "crosswalk" / "location.csv"))


_SINKS: dict[str, list] = {}


def run_stream(stream: EventScript, *, seeds=()) -> dict[str, list]:
    """Run StockEvents + RunningPosition + WindowPositionChanges over `stream`, streaming."""
    opts = PipelineOptions()
    opts.view_as(StandardOptions).streaming = True
    names = ("movements", "quarantine", "updates", "changes", "alerts")
    for n in names:
        _SINKS[n] = []
    with beam.Pipeline(runner="DirectRunner", options=opts) as p:
        raw_events = p | "Events" >> stream
        events = raw_events | "StockEvents" >> StockEvents(PARAMS, SPEC, *XW)
        seed_pc = p | "Seeds" >> beam.Create(list(seeds))
        pos = {"seeds": seed_pc, "movements": events["movements"], "availability": events["availability"]} | "Position" >> RunningPosition(
            PARAMS, str(WORLD / "master" / "items.csv"), *XW
        )
        changes = pos["updates"] | "Changes" >> WindowPositionChanges(PARAMS)
        for name, pc in (("movements", events["movements"]), ("quarantine", events["quarantine"]), ("updates", pos["updates"]), ("changes", changes), ("alerts", pos["alerts"])):
            pc | f"Collect{name}" >> beam.Map(_append, name=name)
    return {n: list(_SINKS[n]) for n in names}


def _append(x, *, name: str):
    # The DirectRunner runs in this process: a module-level sink is fine for tests only.
    # The transforms pass pyarrow Tables (micro-batches); the assertions look at their rows.
    _SINKS[name].extend(x.to_pylist() if isinstance(x, pa.Table) else [x])


def script() -> EventScript:
    return EventScript().advance_watermark_to(Timestamp(micros=us("09:00")))


def panes(out, hhmm: str) -> list[tuple[str, int, int, int]]:
    start = dt.datetime.fromisoformat(at(hhmm))
    rows = sorted((r for r in out["changes"] if r["window_start"] == start), key=lambda r: r["pane_index"])
    return [(r["pane_timing"], r["pane_index"], r["events"], r["on_hand_change"]) for r in rows]


def test_out_of_order_events_and_counts():
    s = script().add_elements([
        raw(ev("e1", "sale", "10:10", 2), 1),
        raw(ev("e2", "count", "10:08", 50), 2),  # the count came later but happened earlier
        raw(ev("e3", "sale", "10:02", 5), 3),  # before the count: already in it
        raw(ev("e4", "return", "10:12", 1), 4),
    ]).advance_watermark_to_infinity()
    out = run_stream(s)
    assert sorted(m["event_id"] for m in out["movements"]) == ["e1", "e2", "e3", "e4"]
    final = max(out["updates"], key=lambda u: u["occurred_at"])
    assert sum(u["on_hand_change"] for u in out["updates"]) == 50 - 2 + 1
    assert {u["on_hand"] for u in out["updates"] if u["event_id"] == final["event_id"]} <= {49, 48, 50, 51, 44}
    assert panes(out, "10:00")[-1][2:] == (4, 49)
    assert out["quarantine"] == []


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


def test_seeded_position_raises_divergence_and_oversell_alerts():
    seed_at = us("08:59")
    seeds = [
        seed_element({"sku": "SKU000003", "location": "S0001", "on_hand": 40, "reserved": 0}, as_of_micros=seed_at),
        seed_element({"sku": "SKU000003", "location": "DC01", "on_hand": 10, "reserved": 3}, as_of_micros=seed_at),
    ]
    availability = json.dumps({
        "event_id": "A1", "event_type": "availability", "occurred_at": at("10:30"), "system": "commerce",
        "location": "FC01", "item": {"id_type": "store_item", "id": "500003"}, "qty": 9, "uom": "EA",
    })
    s = script().add_elements([
        raw(ev("s0", "sale", "08:58", 7), 1),  # before the seed's cut-off: already in it
        raw(ev("s1", "sale", "10:00", 2), 2),
        raw(ev("c1", "count", "10:10", 30), 3),  # store counts 30, running position 38: beyond max(1, 2%)
        raw(ev("c2", "count", "10:20", 31), 4),  # 31 vs 30: within tolerance
        raw(availability, 5),  # ATP = 10 - 3 - 2 = 5 < 9 published
    ]).advance_watermark_to_infinity()
    out = run_stream(s, seeds=seeds)
    alerts = sorted(out["alerts"], key=lambda a: a["rule"])
    assert [(a["rule"], a["subject"], a["threshold"], a["observed"]) for a in alerts] == [
        ("availability_above_atp", "SKU000003@DC01/commerce", 5.0, 9.0),
        ("store_divergence", "SKU000003@S0001", 1.0, -8.0),
    ]
    by_id = {u["event_id"]: u for u in out["updates"]}
    assert by_id["s0"]["on_hand_change"] == 0 and by_id["c1"]["on_hand"] == 30
    assert max(out["updates"], key=lambda u: u["occurred_at"])["on_hand"] == 31
    assert all(u["seeded"] for u in out["updates"])


# --- the columnar hot path ----------------------------------------------------------------------


def _book_trace(events, seed):
    """Per event (on_hand_change, on_hand) by PositionBook, one event at a time (the reference)."""
    books: dict = {}
    out = []
    for sku, loc, ts, qty, is_count in events:
        b = books.get((sku, loc))
        if b is None:
            b = books[(sku, loc)] = PositionBook()
            if (sku, loc) in seed:
                b.seed(on_hand=seed[(sku, loc)], reserved=0, as_of=1_000)
        d, _ = b.apply(ts=ts, qty=qty, reserved_delta=0, is_count=is_count)
        out.append((d, b.on_hand))
    return out, {k: b.on_hand for k, b in books.items()}


@pytest.mark.parametrize("seed_value", [0, 1, 2, 3, 4])
def test_columnar_positions_match_position_book(seed_value):
    """apply_movements over random batches = PositionBook applied event by event."""
    import random

    import polars as pl

    from invrecon.transforms.stream.kernels import BOOKS_SCHEMA, PENDING_SCHEMA, apply_movements, new_books

    rng = random.Random(seed_value)
    keys = [("A", "S1"), ("A", "S2"), ("B", "S1")]
    seed = {("A", "S1"): 10}
    events = []
    for _ in range(300):
        sku, loc = rng.choice(keys)
        is_count = rng.random() < 0.15
        ts = rng.choice([rng.randint(0, 5_000), 900, 1_000, 2_000])  # ties with the seed and each other
        events.append((sku, loc, ts, rng.randint(0, 40) if is_count else rng.randint(-5, 5), is_count))
    expected, final = _book_trace(events, seed)
    books = new_books(pl.DataFrame(keys, schema=["sku", "location"], orient="row"),
                       {k: ("seed", {"on_hand": v, "reserved": 0, "as_of": 1_000}) for k, v in seed.items()})
    pending = pl.DataFrame(schema=PENDING_SCHEMA)
    got = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 60)
        batch = events[i:i + size]
        moves = pl.DataFrame(
            {
                "sku": [e[0] for e in batch], "location": [e[1] for e in batch], "event_id": [f"e{i + j}" for j in range(len(batch))],
                "event_type": ["count" if e[4] else "adjustment" for e in batch], "system": ["store"] * len(batch),
                "file": ["f"] * len(batch), "locator": [f"line {i + j}" for j in range(len(batch))],
                "_ts": [e[2] for e in batch], "qty": [e[3] for e in batch], "reserved_delta": [0] * len(batch),
                "_arrival": list(range(i, i + len(batch))),
            }
        )
        books, pending, updates = apply_movements(books.select(list(BOOKS_SCHEMA)), pending, moves)
        got += list(zip(updates["on_hand_change"].to_list(), updates["on_hand"].to_list()))
        i += size
    assert got == expected
    assert {(s, l): oh + a for s, l, oh, a in books.select("sku", "location", "base_oh", "after_oh").iter_rows()} == final


def test_shuffled_batches_and_state_round_trip_through_their_coders():
    """ArrowBatch crosses a shuffle as Arrow IPC (re-encoded as the same bytes); state as Arrow too."""
    import polars as pl

    from invrecon.transforms.coders import TableCoder
    from invrecon.transforms.stream.batches import ArrowBatch, ArrowBatchCoder
    from invrecon.transforms.stream.kernels import BOOKS_SCHEMA, PENDING_SCHEMA

    table = pa.table({"event_id": ["a", "b", None], "_raw": ['{"x": 1}', "é", ""], "_ts": [1, 2, 3]})
    coder = ArrowBatchCoder()
    wire = coder.encode(ArrowBatch(table, tag="f"))
    batch = coder.decode(wire)
    assert coder.encode(batch) == wire  # regrouping moves the bytes, no decode
    assert batch.tag == "f" and batch.table.equals(table)
    state = TableCoder()
    assert state.decode(state.encode(table)).equals(table)
    books = pl.DataFrame(schema=BOOKS_SCHEMA)
    pending = pl.DataFrame({"sku": ["s"], "location": ["l"], "ts": [5], "qty": [-2]}, schema=PENDING_SCHEMA)
    books2, pending2 = state.decode(state.encode((books, pending)))
    assert books2.schema == books.schema and books2.height == 0 and pending2.equals(pending)


def test_decode_chunk_isolates_broken_lines_and_keeps_order():
    from invrecon.transforms.stream import RawChunk, decode_chunk

    good = [ev(f"g{i}", "sale", "10:00", 1) for i in range(100)]
    texts = good[:40] + ['{"event_id": "x", "item": "not an object", "qty": 1}', '{"event_id": "BROKEN"'] + good[40:]
    parsed, rejected = decode_chunk(RawChunk(texts, "file:///e.jsonl", list(range(1, len(texts) + 1))))
    assert parsed.sort("_seq")["event_id"].to_list() == [f"g{i}" for i in range(100)]
    assert sorted(rejected["code"].to_list()) == ["malformed_event", "missing_field"]
    assert all(r.startswith("file:///e.jsonl: line 4") for r in rejected["reason"].to_list())


def test_bounded_replay_equals_the_streaming_graph(tmp_path):
    """A file replay (bounded, batch runner) and the same lines as messages (TestStream) agree."""
    lines = [ev("r1", "sale", "10:01", 2), ev("r2", "count", "10:05", 30), ev("r1", "sale", "10:01", 2), ev("r3", "return", "10:20", 1),
             '{"event_id": "BROKEN"']
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    from invrecon.transforms.stream import read_event_chunks

    with beam.Pipeline(runner="FnApiRunner") as p:
        raw_chunks = p | beam.Create(list(read_event_chunks(f"file://{path}", timezone="UTC")))
        events = raw_chunks | StockEvents(PARAMS, SPEC, *XW, bounded=True)
        _SINKS["bounded_movements"], _SINKS["bounded_quarantine"] = [], []
        events["movements"] | "CollectM" >> beam.Map(_append, name="bounded_movements")
        events["quarantine"] | "CollectQ" >> beam.Map(_append, name="bounded_quarantine")
    s = script().add_elements([raw(t, n) for n, t in enumerate(lines, start=1)]).advance_watermark_to_infinity()
    out = run_stream(s)
    assert sorted(m["event_id"] for m in _SINKS["bounded_movements"]) == sorted(m["event_id"] for m in out["movements"]) == ["r1", "r2", "r3"]
    codes = sorted(q["reason_code"] for q in _SINKS["bounded_quarantine"])
    assert codes == sorted(q["reason_code"] for q in out["quarantine"]) == ["duplicate_event", "malformed_event"]


def test_bus_clock_equals_a_line_by_line_reading():
    """The columnar clock (literal scan, regex fallback, any timestamp shape) is the per-line one."""
    import re

    from invrecon.transforms.stream.params import NO_TIME
    from invrecon.transforms.stream.raw import event_time_micros
    from invrecon.transforms.stream.replay import bus_clock

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


def test_a_replay_bucket_repeating_ids_across_batches_quarantines_the_repeats():
    """A bounded replay merges a bucket's batches (several chunks per column); repeats among them
    leave as duplicate_event rows (this crashed in polars' format before the frame was rechunked)."""
    import polars as pl

    from invrecon.transforms.canonical import load_crosswalks
    from invrecon.transforms.stream import RawChunk, canonicalize_chunk
    from invrecon.transforms.stream.batches import ArrowBatch, merge_in_arrival_order
    from invrecon.transforms.stream.dedup import drop_repeats

    def canonical(*texts, first=1):
        numbers = list(range(first, first + len(texts)))
        chunk = RawChunk(list(texts), "pubsub://test", numbers, [f"message {n}" for n in numbers], None, 0)
        return canonicalize_chunk(chunk, spec=SPEC, crosswalks=load_crosswalks(*XW), run_id="t")[0]

    first = canonical(ev("d1", "sale", "10:02", 3), ev("d2", "sale", "10:03", 1))
    again = canonical(ev("d1", "sale", "10:02", 3), ev("d3", "return", "10:04", 2), ev("d2", "sale", "10:03", 1), first=3)
    _, merged = merge_in_arrival_order((0, [ArrowBatch(first), ArrowBatch(again)]))
    kept, repeats = drop_repeats(merged, PARAMS)
    assert kept["event_id"].to_list() == ["d1", "d2", "d3"]
    assert pl.from_arrow(repeats).select("reason_code", "locator", "reason").rows() == [
        ("duplicate_event", "message 3", "pubsub://test: message 3: event_id d1 was already applied; counted once"),
        ("duplicate_event", "message 5", "pubsub://test: message 5: event_id d2 was already applied; counted once"),
    ]
