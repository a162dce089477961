"""DESIGN.md §6.4's timing rule, in the generator's ground truth and in the pipeline alike.

`timing` only when the rolled figures agree exactly (delta = 0) and the raw as-of figures differ
beyond the tolerance on R's raw figure; a residual after rolling, however small, is
`within_tolerance` or `qty_mismatch` (issue 12, §2). The ground truth is written apart from the
pipeline (fixtures/generator/), so both are held to the same table here.
"""

from __future__ import annotations

import polars as pl
import pytest

from invrecon.fixtures.generator import classify
from invrecon.transforms.reconcile.classify import discrepancy_class

# record_qty, other_qty, raw_delta, open in-transit, tolerance (on rolled R), tolerance on raw R, class, explained
CASES = [
    (38, 37, 3, 0, 1.0, 1.0, "within_tolerance", None),  # rolled -1, raw 3: was written as timing
    (38, 39, -40, 0, 1.0, 1.0, "within_tolerance", None),
    (100, 99, 50, 0, 0.0, 0.0, "qty_mismatch", None),  # a DC's tolerance is 0: a real unit missing
    (37, 37, 4, 0, 1.0, 1.0, "timing", 4),
    (37, 37, 1, 0, 1.0, 1.0, None, None),
    (37, 37, 2, 0, 5.0, 1.0, "timing", 2),  # R's raw figure sets the bar for the raw difference
    (37, 37, 2, 0, 1.0, 5.0, None, None),
    (None, 0, 5, 0, 0.0, 0.0, "timing", 5),
    (10, None, -10, 0, 0.0, 0.0, "missing_in_other", None),
    (None, 6, 6, 0, 0.0, 0.0, "missing_in_record", None),
    (16, 10, -6, 6, 0.0, 0.0, "in_transit", 6),
]


@pytest.mark.parametrize(("record", "other", "raw", "transit", "tol", "raw_tol", "want", "explained"), CASES)
def test_ground_truth_classifies_by_the_rule(record, other, raw, transit, tol, raw_tol, want, explained):
    got = classify(record_qty=record, other_qty=other, raw_delta=raw, open_in_transit=transit, tolerance=tol, raw_tolerance=raw_tol)
    assert got == (want, explained)


@pytest.mark.parametrize(("record", "other", "raw", "transit", "tol", "raw_tol", "want", "explained"), CASES)
def test_pipeline_classifies_like_the_ground_truth(record, other, raw, transit, tol, raw_tol, want, explained):
    delta = (other or 0) - (record or 0)
    pairs = pl.DataFrame(
        [{"record_qty": record, "other_qty": other, "delta": delta, "raw_delta": raw, "tolerance": tol, "_raw_tolerance": raw_tol,
          "_in": transit, "_out": 0}],
        schema={"record_qty": pl.Int64, "other_qty": pl.Int64, "delta": pl.Int64, "raw_delta": pl.Int64, "tolerance": pl.Float64,
                "_raw_tolerance": pl.Float64, "_in": pl.Int64, "_out": pl.Int64},
    )
    assert pairs.select(discrepancy_class()).item() == want
