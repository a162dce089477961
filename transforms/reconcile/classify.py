"""Classify a compared pair (DESIGN.md §6.3-6.4): its tolerance, its delta, its discrepancy class.

The worked example of the rules is in `transforms.reconcile.bucket`'s docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import polars as pl

__all__ = ["Tolerance", "classify_pairs", "discrepancy_class", "tolerance_exprs"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tolerance:
    """One tolerance rule: the first whose `match` fields all equal the pair's wins.

    Example:
        Tolerance(match=(("location_type", "store"),), abs=1, pct=0.02)   # max(1, 2%) at stores
    """

    match: tuple[tuple[str, str], ...]
    abs: float
    pct: float


def tolerance_exprs(tolerances: Sequence[Tolerance]) -> tuple[pl.Expr, pl.Expr]:
    """(abs, pct) of the first tolerance rule whose `match` fields all equal a row's (0, 0 when none does).

    A `system` match reads the row's `other_system`; the nightly reconcile and the stream's
    divergence alerts both use this, so a tolerance means the same in each.
    """
    chain_a = chain_p = None
    for rule in tolerances:
        cond = pl.lit(True)
        for key, value in rule.match:
            column = "other_system" if key == "system" else key
            cond = cond & (pl.col(column).cast(pl.String) == value).fill_null(False)
        if chain_a is None:
            chain_a = pl.when(cond).then(pl.lit(rule.abs))
            chain_p = pl.when(cond).then(pl.lit(rule.pct))
        else:
            chain_a = chain_a.when(cond).then(pl.lit(rule.abs))
            chain_p = chain_p.when(cond).then(pl.lit(rule.pct))
    if chain_a is None:
        return pl.lit(0.0), pl.lit(0.0)
    return chain_a.otherwise(pl.lit(0.0)), chain_p.otherwise(pl.lit(0.0))


def discrepancy_class() -> pl.Expr:
    """The class of a compared pair (DESIGN.md §6.4), first that applies, or null for a match.

    Reads the pair's columns `record_qty`, `other_qty` (rolled to T, null when that side has no
    record), `delta`, `raw_delta`, `tolerance` (on R's rolled figure), `_raw_tolerance` (the same
    rule on R's raw as-of figure) and `_in` / `_out` (open in-transit quantity into / out of the
    location). `timing` needs the rolled figures to agree exactly: any residual after rolling is
    `within_tolerance` or `qty_mismatch`, never hidden as timing.

    Example (store tolerance max(1, 2%)): delta 0 with raw_delta 4 against raw R 36 is `timing`;
    delta -1 with raw_delta 3 is `within_tolerance`; delta -1 at a DC (tolerance 0) is
    `qty_mismatch`, whatever its raw_delta.
    """
    d = pl.col("delta").abs()
    tol = pl.col("tolerance")
    in_transit_match = (d > 0) & ((d == pl.col("_in")) | (d == pl.col("_out")) | (d == pl.col("_in") + pl.col("_out")))
    return (
        pl.when(pl.col("record_qty").is_not_null() & (pl.col("record_qty") != 0) & pl.col("other_qty").is_null()).then(pl.lit("missing_in_other"))
        .when(pl.col("other_qty").is_not_null() & (pl.col("other_qty") != 0) & pl.col("record_qty").is_null()).then(pl.lit("missing_in_record"))
        .when(in_transit_match).then(pl.lit("in_transit"))
        .when((d > 0) & (d <= tol)).then(pl.lit("within_tolerance"))
        .when(d > 0).then(pl.lit("qty_mismatch"))
        .when((d == 0) & (pl.col("raw_delta").abs() > pl.col("_raw_tolerance"))).then(pl.lit("timing"))
        .otherwise(None)
    )


def classify_pairs(pairs: pl.DataFrame, tolerances: Sequence[Tolerance]) -> pl.DataFrame:
    """Add each pair's delta, raw_delta, tolerance, class, explained_qty and unit_cost.

    Reads `record_qty` / `other_qty` (rolled to T), `raw_record_qty` / `raw_other_qty` (as
    reported), `_in` / `_out` (open in-transit quantity, null for none), `unit_cost` (items
    master) and `_record_unit_cost` (the record system's), plus whatever the tolerance rules
    match on. A pair with a null class is a match.
    """
    abs_e, pct_e = tolerance_exprs(tolerances)
    r0 = pl.col("record_qty").fill_null(0)
    s0 = pl.col("other_qty").fill_null(0)
    raw_r0 = pl.col("raw_record_qty").fill_null(0)
    pairs = pairs.with_columns(
        (s0 - r0).alias("delta"),
        (pl.col("raw_other_qty").fill_null(0) - raw_r0).alias("raw_delta"),
        pl.max_horizontal(abs_e, pct_e * r0.abs().cast(pl.Float64)).alias("tolerance"),
        # The same rule on R's raw (as-of) figure: what the raw difference is judged by (timing).
        pl.max_horizontal(abs_e, pct_e * raw_r0.abs().cast(pl.Float64)).alias("_raw_tolerance"),
        pl.col("_in").fill_null(0),
        pl.col("_out").fill_null(0),
    )
    d = pl.col("delta").abs()
    transit_qty = (
        pl.when(d == pl.col("_in")).then(pl.col("_in"))
        .when(d == pl.col("_out")).then(pl.col("_out"))
        .otherwise(pl.col("_in") + pl.col("_out"))
    )
    pairs = pairs.with_columns(discrepancy_class().alias("class"))
    return pairs.with_columns(
        pl.when(pl.col("class") == "in_transit").then(transit_qty)
        .when(pl.col("class") == "timing").then(pl.col("raw_delta") - pl.col("delta"))
        .otherwise(None).cast(pl.Int64).alias("explained_qty"),
        pl.coalesce(pl.col("unit_cost"), pl.col("_record_unit_cost")).alias("unit_cost"),
    )
