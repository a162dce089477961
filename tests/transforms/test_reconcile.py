"""Every rule of DESIGN.md §6 on hand-made keys, through `reconcile_bucket` directly."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.reconcile import ReconcileParams, Tolerance, latest_positions, open_in_transit, reconcile_bucket, roll_to_cutoff

UTC = dt.UTC
DAY = dt.date(2026, 11, 30)
T = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=UTC)  # 23:59:59.999 America/Chicago
EVENING = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 20:00 local
AFTER_MIDNIGHT = dt.datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 00:30 local next day

STORE_TOL = Tolerance((("location_type", "store"),), 1, 0.02)
A_TOL = Tolerance((("abc_class", "A"),), 0, 0)
DEFAULT = Tolerance((), 0, 0)


def _frame(rows: list[dict], schema) -> pl.DataFrame:
    base = {f.name: None for f in schema}
    return pl.from_arrow(__import__("pyarrow").Table.from_pylist([{**base, **r} for r in rows], schema=schema))


def pos(system, sku, location, qty, as_of, *, reserved=None, available=None, unit_cost=None):
    return {"system": system, "sku": sku, "location": location, "on_hand": qty, "as_of": as_of,
            "reserved": reserved, "available": available, "unit_cost": unit_cost, "source": system, "file": f"{system}.csv", "locator": "line 2"}


def mv(sku, location, event_type, qty, at, *, reserved_delta=0, event_id=None, reference=None):
    return {"event_id": event_id or f"{event_type}-{at.isoformat()}-{qty}", "system": "store", "event_type": event_type, "sku": sku,
            "location": location, "qty": qty, "reserved_delta": reserved_delta, "occurred_at": at, "reference": reference, "source": "ev"}


def run(positions, movements=(), in_transit=(), availability=(), *, items=None, tolerances=(STORE_TOL, DEFAULT), locations=None):
    items = items if items is not None else pl.DataFrame(
        {"sku": ["A", "B"], "abc_class": ["B", "A"], "category": ["x", "x"], "unit_cost": [2.0, 10.0], "currency": ["USD", "USD"], "safety_stock": [0, 0]}
    )
    locations = locations if locations is not None else pl.DataFrame({"location": ["S1", "DC1"], "location_type": ["store", "dc"]})
    p = _frame(list(positions), POSITION)
    cov = p.filter(pl.col("on_hand").is_not_null()).select("system", "location").unique()
    snap, disc = reconcile_bucket(
        positions=p, availability=_frame(list(availability), POSITION), movements=_frame(list(movements), MOVEMENT),
        in_transit=_frame(list(in_transit), IN_TRANSIT), items=items, location_types=locations, coverage=cov,
        params=ReconcileParams(record_system="erp", cutoff=T, snapshot_date=DAY, tolerances=tuple(tolerances)),
    )
    return pl.from_arrow(snap), pl.from_arrow(disc)


def only(disc: pl.DataFrame) -> dict:
    assert disc.height == 1, disc
    return disc.row(0, named=True)


def test_roll_forward_adds_movements_after_as_of_up_to_cutoff():
    at = dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    late = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)  # after the cut-off: not counted
    early = dt.datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # before the as-of: already in the figure
    latest = latest_positions(_frame([pos("store", "A", "S1", 40, EVENING)], POSITION))
    rolled = roll_to_cutoff(latest, _frame([mv("A", "S1", "sale", -3, at), mv("A", "S1", "sale", -1, late), mv("A", "S1", "sale", -5, early)], MOVEMENT), T)
    assert rolled["qty_t"].to_list() == [37]


def test_roll_back_when_as_of_is_after_cutoff_and_ignores_counts():
    after = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)
    latest = latest_positions(_frame([pos("erp", "A", "S1", 37, AFTER_MIDNIGHT)], POSITION))
    moves = _frame([mv("A", "S1", "sale", -1, after), mv("A", "S1", "count", 99, after + dt.timedelta(minutes=1))], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["qty_t"].to_list() == [38]


def test_count_resets_forward_roll_and_later_movements_add():
    c = dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    latest = latest_positions(_frame([pos("store", "A", "S1", 40, EVENING)], POSITION))
    moves = _frame([mv("A", "S1", "sale", -2, c - dt.timedelta(minutes=5)), mv("A", "S1", "count", 30, c), mv("A", "S1", "sale", -1, c + dt.timedelta(minutes=5))], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["qty_t"].to_list() == [29]


def test_reserved_rolls_with_reservations_and_releases():
    at = dt.datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    latest = latest_positions(_frame([pos("erp", "A", "DC1", 100, EVENING, reserved=5)], POSITION))
    moves = _frame([mv("A", "DC1", "reservation", 0, at, reserved_delta=3), mv("A", "DC1", "release", 0, at + dt.timedelta(minutes=1), reserved_delta=-1)], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["reserved_t"].to_list() == [7]


def _docstring_example(erp_reports: int) -> pl.DataFrame:
    sale_evening = dt.datetime(2026, 12, 1, 4, 10, tzinfo=UTC)
    sale_night = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)
    _, disc = run(
        [pos("erp", "A", "S1", erp_reports, AFTER_MIDNIGHT), pos("store", "A", "S1", 40, dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC))],
        [mv("A", "S1", "sale", -3, sale_evening), mv("A", "S1", "sale", -1, sale_night)],
    )
    return disc


def test_docstring_example_is_timing():
    row = only(_docstring_example(36))
    assert (row["class"], row["record_qty"], row["other_qty"], row["delta"], row["raw_delta"]) == ("timing", 37, 37, 0, 4)
    assert row["explained_qty"] == 4 and row["tolerance"] == 1.0


def test_a_residual_of_one_after_rolling_is_not_timing():
    """DESIGN.md §6.4: rolled delta -1 with a raw difference of 3 is within tolerance, not timing."""
    row = only(_docstring_example(37))
    assert (row["class"], row["record_qty"], row["other_qty"], row["delta"], row["raw_delta"]) == ("within_tolerance", 38, 37, -1, 3)
    assert row["explained_qty"] is None


def test_a_residual_of_one_beyond_tolerance_is_qty_mismatch_whatever_the_raw_difference():
    sale = dt.datetime(2026, 12, 1, 4, 10, tzinfo=UTC)  # between the WMS as-of and the cut-off
    _, disc = run([pos("erp", "A", "DC1", 100, AFTER_MIDNIGHT), pos("wms", "A", "DC1", 150, EVENING)], [mv("A", "DC1", "sale", -51, sale)])
    row = only(disc)  # DC tolerance 0: wms(T) = 99 vs erp(T) = 100
    assert (row["class"], row["delta"], row["raw_delta"], row["tolerance"]) == ("qty_mismatch", -1, 50, 0.0)


def test_timing_judges_the_raw_difference_by_the_tolerance_on_the_record_systems_raw_figure():
    # ERP says 5000 at 00:30 after 101 were sold past the cut-off: erp(T) = 5101. The store's
    # 5101 at 21:00 agrees at T. raw_delta 101 > 2% of raw 5000 = 100 (though <= 2% of 5101).
    after = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)
    _, disc = run([pos("erp", "A", "S1", 5000, AFTER_MIDNIGHT), pos("store", "A", "S1", 5101, dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC))],
                  [mv("A", "S1", "sale", -101, after)])
    row = only(disc)
    assert (row["class"], row["delta"], row["raw_delta"], row["explained_qty"]) == ("timing", 0, 101, 101)
    # The other way round: 101 against 2% of a raw 5101 (102.02) is no discrepancy at all.
    before = dt.datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    _, disc = run([pos("erp", "A", "S1", 5101, EVENING), pos("store", "A", "S1", 5000, dt.datetime(2026, 12, 1, 5, 0, tzinfo=UTC))],
                  [mv("A", "S1", "sale", -101, before)])
    assert disc.height == 0


def test_exact_match_writes_no_discrepancy_and_snapshot_says_matched():
    snap, disc = run([pos("erp", "A", "S1", 10, EVENING), pos("store", "A", "S1", 10, EVENING)])
    assert disc.height == 0
    assert snap.select("sku", "location", "on_hand", "status").row(0) == ("A", "S1", 10, "matched")


def test_missing_in_other_at_a_location_the_other_system_reports():
    _, disc = run([pos("erp", "A", "S1", 10, EVENING), pos("erp", "B", "S1", 4, EVENING), pos("store", "B", "S1", 4, EVENING)])
    row = only(disc)
    assert (row["sku"], row["class"], row["record_qty"], row["other_qty"], row["delta"]) == ("A", "missing_in_other", 10, None, -10)


def test_no_comparison_where_the_other_system_reports_nothing():
    _, disc = run([pos("erp", "A", "DC1", 10, EVENING), pos("store", "A", "S1", 3, EVENING), pos("erp", "A", "S1", 3, EVENING)])
    assert disc.height == 0


def test_missing_in_record():
    _, disc = run([pos("store", "A", "S1", 6, EVENING), pos("erp", "B", "S1", 1, EVENING), pos("store", "B", "S1", 1, EVENING)])
    row = only(disc)
    assert (row["class"], row["record_qty"], row["other_qty"], row["delta"], row["value_delta"]) == ("missing_in_record", None, 6, 6, 12.0)


def test_zero_against_missing_is_a_match():
    _, disc = run([pos("erp", "A", "S1", 0, EVENING), pos("erp", "B", "S1", 1, EVENING), pos("store", "B", "S1", 1, EVENING)])
    assert disc.height == 0


def test_in_transit_explains_delta_equal_to_open_shipment():
    it = {"shipment_id": "ASN1", "sku": "A", "from_location": None, "to_location": "S1", "qty": 6, "shipped_at": EVENING, "source": "edi"}
    _, disc = run([pos("erp", "A", "S1", 16, EVENING), pos("store", "A", "S1", 10, EVENING)], in_transit=[it])
    row = only(disc)
    assert (row["class"], row["delta"], row["explained_qty"]) == ("in_transit", -6, 6)


def test_within_tolerance_at_a_store():
    _, disc = run([pos("erp", "A", "S1", 100, EVENING), pos("store", "A", "S1", 98, EVENING)])
    row = only(disc)  # tolerance max(1, 2% of 100) = 2
    assert (row["class"], row["delta"], row["tolerance"]) == ("within_tolerance", -2, 2.0)


def test_beyond_tolerance_is_qty_mismatch():
    _, disc = run([pos("erp", "A", "S1", 100, EVENING), pos("store", "A", "S1", 97, EVENING)])
    assert only(disc)["class"] == "qty_mismatch"


def test_first_matching_tolerance_rule_wins():
    # B is class A: the A rule (0) comes first, so a difference of 1 at a store is a mismatch.
    _, disc = run([pos("erp", "B", "S1", 100, EVENING), pos("store", "B", "S1", 99, EVENING)], tolerances=(A_TOL, STORE_TOL, DEFAULT))
    assert only(disc)["class"] == "qty_mismatch"
    _, disc = run([pos("erp", "B", "S1", 100, EVENING), pos("store", "B", "S1", 99, EVENING)], tolerances=(STORE_TOL, A_TOL, DEFAULT))
    assert only(disc)["class"] == "within_tolerance"


def test_unit_cost_from_items_master_else_record_system():
    items = pl.DataFrame({"sku": ["A"], "abc_class": ["B"], "category": ["x"], "unit_cost": [None], "currency": ["USD"], "safety_stock": [0]}, schema_overrides={"unit_cost": pl.Float64})
    _, disc = run([pos("erp", "A", "DC1", 10, EVENING, unit_cost=3.5), pos("wms", "A", "DC1", 12, EVENING)], items=items)
    row = only(disc)
    assert (row["unit_cost"], row["value_delta"]) == (3.5, 7.0)


def test_oversell_risk_where_channel_publishes_above_atp():
    items = pl.DataFrame({"sku": ["A"], "abc_class": ["B"], "category": ["x"], "unit_cost": [2.0], "currency": ["USD"], "safety_stock": [2]})
    av = {**pos("commerce", "A", "DC1", None, EVENING, available=10), "source": "commerce"}
    snap, disc = run([pos("erp", "A", "DC1", 12, EVENING, reserved=3), pos("wms", "A", "DC1", 12, EVENING)], availability=[av], items=items)
    row = only(disc)  # ATP = 12 - 3 - 2 = 7; published 10 -> excess 3
    assert (row["class"], row["other_system"], row["record_qty"], row["other_qty"], row["delta"], row["value_delta"]) == ("oversell_risk", "commerce", 7, 10, 3, 6.0)
    assert snap["atp"].to_list() == [7]


def test_open_in_transit_partial_receipt_leaves_remainder():
    its = _frame([{"shipment_id": "S", "sku": "A", "from_location": "DC1", "to_location": "S1", "qty": 10, "shipped_at": EVENING, "source": "edi"}], IN_TRANSIT)
    rec = _frame([mv("A", "S1", "receipt", 4, EVENING + dt.timedelta(hours=1), reference="S"), mv("A", "S1", "receipt", 6, T + dt.timedelta(hours=1), reference="S")], MOVEMENT)
    assert open_in_transit(its, rec, T)["qty"].to_list() == [6]


def test_params_reject_naive_cutoff():
    with pytest.raises(ValueError, match="cutoff"):
        ReconcileParams(record_system="erp", cutoff=dt.datetime(2026, 11, 30), snapshot_date=DAY)
