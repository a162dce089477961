"""RunningPosition: positions per (sku, location) in state, seeded from the snapshot, correct out of order."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.transforms.stream import RunningPosition, seed_element
from tests.transforms.stream.helpers import ITEMS, PARAMS, XW, availability, canonical, ev, panes, raw, rows, run_stream, script, us


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


def test_seed_element_keys_a_snapshot_row_by_sku_and_location():
    """A published inventory_snapshot row as RunningPosition's side input: as of the snapshot's cut-off."""
    row = {"sku": "SKU000003", "location": "S0001", "on_hand": 40, "reserved": None, "run_id": "r"}
    assert seed_element(row, as_of_micros=5) == (("SKU000003", "S0001"), ("seed", {"on_hand": 40, "reserved": None, "as_of": 5}))
    assert seed_element({"sku": "A", "location": "S1"}, as_of_micros=0)[1][1]["on_hand"] is None


def _seeds():
    seed_at = us("08:59")
    return [
        seed_element({"sku": "SKU000003", "location": "S0001", "on_hand": 40, "reserved": 0}, as_of_micros=seed_at),
        seed_element({"sku": "SKU000003", "location": "DC01", "on_hand": 10, "reserved": 3}, as_of_micros=seed_at),
    ]


_EVENTS = [
    ev("s0", "sale", "08:58", 7),  # before the seed's cut-off: already in it
    ev("s1", "sale", "10:00", 2),
    ev("c1", "count", "10:10", 30),  # store counts 30, running position 38: beyond max(1, 2%)
    ev("c2", "count", "10:20", 31),  # 31 vs 30: within tolerance
    availability("A1", "10:30", 9),  # ATP = 10 - 3 - 2 = 5 < 9 published
]


def test_seeded_position_raises_divergence_and_oversell_alerts():
    s = script().add_elements([raw(text, n) for n, text in enumerate(_EVENTS, start=1)]).advance_watermark_to_infinity()
    out = run_stream(s, seeds=_seeds())
    alerts = sorted(out["alerts"], key=lambda a: a["rule"])
    assert [(a["rule"], a["subject"], a["threshold"], a["observed"]) for a in alerts] == [
        ("availability_above_atp", "SKU000003@DC01/commerce", 5.0, 9.0),
        ("store_divergence", "SKU000003@S0001", 1.0, -8.0),
    ]
    by_id = {u["event_id"]: u for u in out["updates"]}
    assert by_id["s0"]["on_hand_change"] == 0 and by_id["c1"]["on_hand"] == 30
    assert max(out["updates"], key=lambda u: u["occurred_at"])["on_hand"] == 31
    assert all(u["seeded"] for u in out["updates"])


def test_running_position_on_a_replay_applies_seeds_movements_and_figures():
    """RunningPosition alone (bounded, its inputs as StockEvents gives them): the same positions
    and alerts as the streaming graph above, one updates table per bucket."""
    movements, figures, _ = canonical(*_EVENTS)
    with BeamTestPipeline(runner="FnApiRunner") as p:
        inputs = {
            "movements": p | "Movements" >> beam.Create([movements]),
            "availability": p | "Figures" >> beam.Create([figures]),
            "seeds": p | "Seeds" >> beam.Create(_seeds()),
        }
        out = inputs | "Position" >> RunningPosition(params=PARAMS, items=ITEMS, crosswalks=XW, bounded=True)
        updates = out["updates"] | "UpdateRows" >> beam.FlatMap(
            lambda t: [(r["event_id"], r["on_hand_change"], r["on_hand"], r["reserved"], r["seeded"]) for r in rows(t)])
        alerts = out["alerts"] | "AlertRows" >> beam.FlatMap(lambda t: [(r["rule"], r["subject"], r["threshold"], r["observed"]) for r in rows(t)])
        assert_that(updates, equal_to([("s0", 0, 40, 0, True), ("s1", -2, 38, 0, True), ("c1", -8, 30, 0, True), ("c2", 1, 31, 0, True)]),
                    label="CheckUpdates")
        assert_that(alerts, equal_to([("store_divergence", "SKU000003@S0001", 1.0, -8.0),
                                      ("availability_above_atp", "SKU000003@DC01/commerce", 5.0, 9.0)]), label="CheckAlerts")
