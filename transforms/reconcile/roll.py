"""Roll positions to the cut-off (DESIGN.md §6.1) and find the shipments still open at it.

Pure polars functions over one bucket of keys; the worked example of rolling is in
`transforms.reconcile.bucket`'s docstring.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

__all__ = ["RECEIPT_TYPES", "latest_positions", "open_in_transit", "roll_to_cutoff"]

# The movements that close an in-transit line: their `reference` is the shipment id.
RECEIPT_TYPES = ("receipt", "transfer_in")


def latest_positions(positions: pl.DataFrame) -> pl.DataFrame:
    """One row per (system, sku, location): the latest as-of, sub-location rows summed.

    Rows of the same system, sku, location and as-of are bins or storage locations of one
    figure and add up; an older as-of is superseded by a newer one.
    """
    if positions.height == 0:
        return positions.with_columns(pl.lit(None, dtype=pl.String).alias("lineage")).head(0)
    summed = positions.group_by("system", "sku", "location", "as_of").agg(
        pl.col("on_hand").sum().alias("on_hand"),
        pl.when(pl.col("reserved").is_not_null().any()).then(pl.col("reserved").sum()).alias("reserved"),
        pl.when(pl.col("available").is_not_null().any()).then(pl.col("available").sum()).alias("available"),
        pl.col("unit_cost").drop_nulls().first().alias("unit_cost"),
        pl.format("{}:{}", pl.col("file"), pl.col("locator")).sort().str.join("; ").alias("lineage"),
    )
    return summed.sort("as_of").group_by("system", "sku", "location").agg(pl.all().last())


def roll_to_cutoff(latest: pl.DataFrame, movements: pl.DataFrame, cutoff: dt.datetime) -> pl.DataFrame:
    """Add `qty_t` and `reserved_t`: each position rolled to the cut-off (DESIGN.md §6.1).

    Forward (as_of <= T): reported + movements in (as_of, T]; the last `count` in that window
    resets the figure to its quantity and only later movements add to it (a count at an instant
    includes everything that happened at that instant). Backward (as_of > T): reported minus
    movements in (T, as_of], counts ignored. Reserved rolls by `reserved_delta` both ways.
    """
    t = pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
    pos = latest.with_row_index("_pid")
    mv = movements.select("sku", "location", "occurred_at", "event_id", "event_type", "qty", "reserved_delta")
    pm = pos.select("_pid", "sku", "location", "as_of").join(mv, on=["sku", "location"], how="inner")
    fwd = pl.col("as_of") <= t
    in_fwd = fwd & (pl.col("occurred_at") > pl.col("as_of")) & (pl.col("occurred_at") <= t)
    in_bwd = ~fwd & (pl.col("occurred_at") > t) & (pl.col("occurred_at") <= pl.col("as_of"))
    is_count = pl.col("event_type") == "count"
    pm = pm.filter(in_fwd | in_bwd).with_columns(in_fwd.alias("_fwd"))
    counts = (
        pm.filter(pl.col("_fwd") & is_count)
        .sort("occurred_at", "event_id")
        .group_by("_pid")
        .agg(pl.col("occurred_at").last().alias("_count_at"), pl.col("qty").last().alias("_count_qty"))
    )
    pm = pm.join(counts, on="_pid", how="left")
    after_count = pl.col("_count_at").is_null() | (pl.col("occurred_at") > pl.col("_count_at"))
    sums = pm.group_by("_pid").agg(
        pl.col("qty").filter(pl.col("_fwd") & ~is_count & after_count).sum().alias("_fwd_qty"),
        pl.col("qty").filter(~pl.col("_fwd") & ~is_count).sum().alias("_bwd_qty"),
        pl.col("reserved_delta").filter(pl.col("_fwd")).sum().alias("_fwd_res"),
        pl.col("reserved_delta").filter(~pl.col("_fwd")).sum().alias("_bwd_res"),
        pl.col("_count_at").first(),
        pl.col("_count_qty").first(),
    )
    out = pos.join(sums, on="_pid", how="left").with_columns(
        pl.col("_fwd_qty", "_bwd_qty", "_fwd_res", "_bwd_res").fill_null(0)
    )
    forward = pl.col("as_of") <= t
    base = pl.when(pl.col("_count_at").is_not_null()).then(pl.col("_count_qty")).otherwise(pl.col("on_hand"))
    return out.with_columns(
        pl.when(forward).then(base + pl.col("_fwd_qty")).otherwise(pl.col("on_hand") - pl.col("_bwd_qty")).alias("qty_t"),
        pl.when(forward).then(pl.col("reserved") + pl.col("_fwd_res")).otherwise(pl.col("reserved") - pl.col("_bwd_res")).alias("reserved_t"),
    ).drop("_pid", "_fwd_qty", "_bwd_qty", "_fwd_res", "_bwd_res", "_count_at", "_count_qty")


def open_in_transit(in_transit: pl.DataFrame, receipts: pl.DataFrame, cutoff: dt.datetime) -> pl.DataFrame:
    """In-transit lines shipped by T with no matching receipt by T.

    A receipt matches on (shipment_id = movement reference, sku); a partial receipt leaves the
    remainder open.
    """
    t = pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
    shipped = in_transit.filter(pl.col("shipped_at").is_null() | (pl.col("shipped_at") <= t))
    got = (
        receipts.filter(
            pl.col("event_type").is_in(RECEIPT_TYPES)
            & pl.col("reference").is_not_null()
            & (pl.col("occurred_at") <= t)
        )
        .group_by(pl.col("reference").alias("shipment_id"), "sku")
        .agg(pl.col("qty").sum().alias("_received"))
    )
    # Lines of one shipment and sku (several HL items, several files) are one quantity.
    lines = shipped.group_by("shipment_id", "sku").agg(
        pl.col("qty").sum(),
        pl.all().exclude("qty").first(),
    )
    out = lines.join(got, on=["shipment_id", "sku"], how="left").with_columns(
        (pl.col("qty") - pl.col("_received").fill_null(0)).alias("qty")
    )
    return out.filter(pl.col("qty") > 0).drop("_received").select(in_transit.columns)
