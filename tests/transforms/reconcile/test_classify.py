"""Tolerance rules and the classification of compared pairs (DESIGN.md §6.3-6.4), on hand-made pairs."""

from __future__ import annotations

import polars as pl
import pytest

from invrecon.transforms.reconcile.classify import Tolerance, classify_pairs, tolerance_exprs
from tests.transforms.reconcile.helpers import A_TOL, DEFAULT, STORE_TOL


def _tolerances(rows: dict, rules) -> list[tuple[float, float]]:
    abs_e, pct_e = tolerance_exprs(rules)
    return pl.DataFrame(rows).with_columns(abs_e.alias("abs"), pct_e.alias("pct")).select("abs", "pct").rows()


def test_first_matching_rule_gives_abs_and_pct():
    rows = {"location_type": ["store", "dc", "store"], "abc_class": ["B", "B", "A"], "other_system": ["pos", "wms", "pos"]}
    assert _tolerances(rows, (A_TOL, STORE_TOL, DEFAULT)) == [(1.0, 0.02), (0.0, 0.0), (0.0, 0.0)]


def test_a_system_rule_matches_the_other_system_and_no_rule_is_zero():
    rows = {"other_system": ["wms", "store"]}
    assert _tolerances(rows, (Tolerance(match=(("system", "wms"),), abs=5, pct=0.1),)) == [(5.0, 0.1), (0.0, 0.0)]
    assert _tolerances(rows, ()) == [(0.0, 0.0), (0.0, 0.0)]


def test_tolerance_fields_are_keyword_only():
    with pytest.raises(TypeError):
        Tolerance((), 0, 0)  # type: ignore[misc]


def test_classify_pairs_explains_an_open_shipment_and_prices_by_the_record_system_when_the_master_has_no_cost():
    pairs = pl.DataFrame({
        "location_type": ["store", "store"], "record_qty": [16, 100], "other_qty": [10, 97],
        "raw_record_qty": [16, 100], "raw_other_qty": [10, 97], "_in": [6, None], "_out": [None, None],
        "unit_cost": [None, 2.0], "_record_unit_cost": [3.5, 9.0],
    }, schema_overrides={"unit_cost": pl.Float64, "_in": pl.Int64, "_out": pl.Int64})
    out = classify_pairs(pairs, (STORE_TOL, DEFAULT))
    assert out.select("class", "delta", "tolerance", "explained_qty", "unit_cost").rows() == [
        ("in_transit", -6, 1.0, 6, 3.5),
        ("qty_mismatch", -3, 2.0, None, 2.0),
    ]
