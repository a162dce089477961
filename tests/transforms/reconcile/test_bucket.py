"""Every rule of DESIGN.md §6 on hand-made keys, through `reconcile_bucket` directly."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.reconcile.bucket import ReconcileParams, reconcile_bucket
from tests.transforms.reconcile.helpers import (
    A_TOL,
    AFTER_MIDNIGHT,
    DAY,
    DEFAULT,
    EVENING,
    STORE_TOL,
    UTC,
    T,
    frame,
    items_frame,
    locations_frame,
    mv,
    pos,
    shipment,
)


def run(positions, movements=(), in_transit=(), availability=(), *, items=None, tolerances=(STORE_TOL, DEFAULT), locations=None):
    items = items if items is not None else items_frame()
    locations = locations if locations is not None else locations_frame()
    p = frame(list(positions), POSITION)
    cov = p.filter(pl.col("on_hand").is_not_null()).select("system", "location").unique()
    snap, disc = reconcile_bucket(
        positions=p, availability=frame(list(availability), POSITION), movements=frame(list(movements), MOVEMENT),
        in_transit=frame(list(in_transit), IN_TRANSIT), items=items, location_types=locations, coverage=cov,
        params=ReconcileParams(record_system="erp", cutoff=T, snapshot_date=DAY, tolerances=tuple(tolerances)),
    )
    return pl.from_arrow(snap), pl.from_arrow(disc)


def only(disc: pl.DataFrame) -> dict:
    assert disc.height == 1, disc
    return disc.row(0, named=True)


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
    it = shipment("ASN1", "A", None, "S1", 6)
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


def test_params_reject_naive_cutoff():
    with pytest.raises(ValueError, match="cutoff"):
        ReconcileParams(record_system="erp", cutoff=dt.datetime(2026, 11, 30), snapshot_date=DAY)
