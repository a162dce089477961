"""Alert rules as pure functions: a count beyond tolerance of the running position, an availability above ATP."""

from __future__ import annotations

import datetime as dt

import polars as pl

from invrecon.transforms.stream.alerts import availability_alerts, count_alerts
from tests.transforms.stream.helpers import PARAMS, us

ITEMS = pl.DataFrame({"sku": ["A"], "abc_class": ["B"], "category": ["x"], "_safety": [2]})
LOCATION_TYPES = pl.DataFrame({"location": ["S1", "D1"], "location_type": ["store", "dc"]})


def _count(event_id: str, qty: int, running: int, *, location: str = "S1", system: str = "store", had_base: bool = True) -> dict:
    return {"sku": "A", "location": location, "event_id": event_id, "event_type": "count", "system": system, "qty": qty,
            "prev_on_hand": running, "had_base": had_base, "occurred_at": us("10:10"), "file": "f", "locator": f"line {event_id}"}


def test_a_count_beyond_tolerance_of_the_running_position_is_a_divergence():
    """Store tolerance max(1, 2%): 30 against 38 is critical (8 > 2 x 1); 31 against 30 is within;
    a DC (tolerance 0) off by one is critical too; no base yet, or a system not watched: nothing."""
    updates = pl.DataFrame([
        _count("c1", 30, 38), _count("c2", 31, 30), _count("c3", 9, 10, location="D1"),
        _count("c4", 0, 50, had_base=False), _count("c5", 0, 50, system="wms"),
    ])
    alerts = count_alerts(updates, params=PARAMS, items=ITEMS, location_types=LOCATION_TYPES)
    assert [(a["rule"], a["subject"], a["threshold"], a["observed"], a["severity"]) for a in alerts] == [
        ("store_divergence", "A@S1", 1.0, -8.0, "critical"),
        ("store_divergence", "A@D1", 0.0, -1.0, "critical"),
    ]
    assert alerts[0]["snapshot_date"] == dt.date(2026, 11, 30) and alerts[0]["_date"] == "2026-11-30" and alerts[0]["run_id"] == "t"
    assert alerts[0]["message"] == "store counted 30 of A at S1 (c1, f: line c1); running position 38, tolerance 1"


def test_an_availability_above_atp_is_an_oversell_risk():
    """ATP = on_hand - reserved - safety stock (2), never below 0: 9 published against 10 - 3 - 2 = 5."""
    figs = pl.DataFrame([
        {"sku": "A", "location": "D1", "system": "commerce", "qty": 9, "on_hand_at": 10, "reserved_at": 3, "had_base": True,
         "_ts": us("10:30"), "file": "f", "locator": "line 1"},
        {"sku": "A", "location": "D1", "system": "commerce", "qty": 5, "on_hand_at": 10, "reserved_at": 3, "had_base": True,
         "_ts": us("10:31"), "file": "f", "locator": "line 2"},
    ])
    alerts = availability_alerts(figs, params=PARAMS, items=ITEMS)
    assert [(a["rule"], a["subject"], a["threshold"], a["observed"], a["severity"]) for a in alerts] == [
        ("availability_above_atp", "A@D1/commerce", 5.0, 9.0, "critical"),
    ]
    assert alerts[0]["message"].endswith("running ATP 5: oversell risk 4")
