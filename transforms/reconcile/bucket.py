"""Reconcile one hash bucket of (sku, location) keys: snapshot and discrepancy rows (DESIGN.md §6).

`reconcile_bucket` is a short sequence of pure polars steps: roll every position to the cut-off
(`transforms.reconcile.roll`), pair each system with the record system where it reports, classify
the pairs (`transforms.reconcile.classify`), add the oversell risks of the availability feeds and
build the two Arrow tables. `ReconcileBySkuLocation` (`transforms.reconcile.composites`) shuffles
by bucket and calls it on each.

Worked example (cut-off T = 2026-11-30 23:59:59.999 local, record system `erp`, store tolerance
max(1, 2%)). Store S001 counts 40 of SKU A at 21:00; 3 are sold at 22:10; ERP reports 36 at
00:30 the next morning, after one more sale of 1 at 00:10:

    store(T) = 40 - 3          = 37      (rolled forward over (21:00, T])
    erp(T)   = 36 - (-1)       = 37      (rolled back over (T, 00:30]: the sale is undone)
    delta    = 37 - 37         = 0       raw_delta = 40 - 36 = 4 > max(1, 2% of raw 36) = 1
    class    = timing                    (the roll explains all of it: explained_qty 4)

Had ERP reported 37, erp(T) would be 38 and delta -1: a residual after rolling, however small, is
not timing but `within_tolerance` here (|-1| <= 1) and `qty_mismatch` beyond the tolerance; its
raw_delta (3) still shows what the roll explained.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pyarrow as pa

from invrecon.schemas import DISCREPANCIES, INVENTORY_SNAPSHOT
from invrecon.transforms.reconcile.classify import Tolerance, classify_pairs
from invrecon.transforms.reconcile.roll import latest_positions, roll_to_cutoff

__all__ = ["ReconcileParams", "reconcile_bucket"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReconcileParams:
    """What a reconcile needs beyond its rows: the record system, the cut-off and the tolerance rules.

    Args:
      record_system: the system every other one is compared with (R).
      cutoff: T, timezone-aware (UTC).
      snapshot_date: the run date the rows are written for.
      tolerances: first-match tolerance rules (DESIGN.md §6.3).
      run_id: written on every row.
    """

    record_system: str
    cutoff: dt.datetime
    snapshot_date: dt.date
    tolerances: tuple[Tolerance, ...] = ()
    run_id: str = ""

    def __post_init__(self) -> None:
        if self.cutoff.tzinfo is None:
            raise ValueError("`cutoff` must be timezone-aware (UTC)")
        for t in self.tolerances:
            if t.abs < 0 or t.pct < 0:
                raise ValueError("tolerance `abs` and `pct` must be >= 0")


def reconcile_bucket(
    *,
    positions: pl.DataFrame,
    availability: pl.DataFrame,
    movements: pl.DataFrame,
    in_transit: pl.DataFrame,
    items: pl.DataFrame,
    location_types: pl.DataFrame,
    coverage: pl.DataFrame,
    params: ReconcileParams,
) -> tuple[pa.Table, pa.Table]:
    """Reconcile one bucket of keys; return (inventory_snapshot, discrepancies) Arrow tables.

    Args:
      positions: canonical positions of the positions systems (record system included).
      availability: canonical positions of availability feeds (`available` set).
      movements: de-duplicated canonical movements at these keys.
      in_transit: in-transit lines open at T touching these keys (either end).
      items: sku, abc_class, category, unit_cost, currency, safety_stock.
      location_types: location, location_type.
      coverage: (system, location) pairs: where each system reports at all, over the whole run.
      params: record system, cut-off, tolerances.
    """
    # A positions system's record without on_hand (an 846 QTY 33 "available" line) says nothing
    # about stock on hand; it stays in the positions table but is not reconciled.
    reported = positions.filter(pl.col("on_hand").is_not_null())
    rolled = roll_to_cutoff(latest_positions(reported), movements, params.cutoff)
    rec, oth = _record_and_others(rolled, params.record_system)
    pairs = _pairs(rolled, rec, oth, coverage=coverage, in_transit=in_transit, items=items, location_types=location_types,
                   record_system=params.record_system)
    disc = classify_pairs(pairs, params.tolerances).filter(pl.col("class").is_not_null())
    atp = _atp(rec, items)
    oversell = _oversell(availability, atp=atp, rec=rec, items=items, location_types=location_types)
    disc_table = _discrepancy_table([disc, oversell] if oversell.height else [disc], params)
    snap = _snapshot(rolled, rec=rec, atp=atp, location_types=location_types, discrepant=disc, params=params)
    return _snapshot_to_arrow(snap), disc_table


def _record_and_others(rolled: pl.DataFrame, record_system: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the record system's rolled rows, every other system's), renamed for pairing."""
    rec = rolled.filter(pl.col("system") == record_system).select(
        "sku", "location",
        pl.col("qty_t").alias("record_qty"),
        pl.col("on_hand").alias("raw_record_qty"),
        pl.col("reserved_t").alias("reserved"),
        pl.col("unit_cost").alias("_record_unit_cost"),
        pl.col("lineage").alias("record_lineage"),
    )
    oth = rolled.filter(pl.col("system") != record_system).select(
        "sku", "location",
        pl.col("system").alias("other_system"),
        pl.col("qty_t").alias("other_qty"),
        pl.col("on_hand").alias("raw_other_qty"),
        pl.col("lineage").alias("other_lineage"),
    )
    return rec, oth


def _pairs(rolled: pl.DataFrame, rec: pl.DataFrame, oth: pl.DataFrame, *, coverage: pl.DataFrame, in_transit: pl.DataFrame,
           items: pl.DataFrame, location_types: pl.DataFrame, record_system: str) -> pl.DataFrame:
    """One row per (key, other system reporting at the key's location), with R's side, the
    items master, the location type and the open in-transit quantity in (`_in`) and out (`_out`)."""
    keys = rolled.select("sku", "location").unique()
    cov = coverage.filter(pl.col("system") != record_system).select(pl.col("system").alias("other_system"), "location").unique()
    # A system with a record at a location covers it, so keys x coverage holds every record.
    pairs = (
        keys.join(cov, on="location", how="inner")
        .join(rec, on=["sku", "location"], how="left")
        .join(oth, on=["sku", "location", "other_system"], how="left")
        .join(items, on="sku", how="left")
        .join(location_types, on="location", how="left")
    )
    inbound = in_transit.group_by("sku", pl.col("to_location").alias("location")).agg(pl.col("qty").sum().alias("_in"))
    outbound = in_transit.group_by("sku", pl.col("from_location").alias("location")).agg(pl.col("qty").sum().alias("_out"))
    return pairs.join(inbound, on=["sku", "location"], how="left").join(outbound, on=["sku", "location"], how="left")


def _atp(rec: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Available to promise per key (DESIGN.md §6.6): R's rolled figure less reserved and safety stock, floored at 0."""
    return rec.join(items.select("sku", "safety_stock"), on="sku", how="left").select(
        "sku", "location",
        pl.max_horizontal(
            pl.lit(0),
            pl.col("record_qty") - pl.col("reserved").fill_null(0) - pl.col("safety_stock").fill_null(0).cast(pl.Int64),
        ).alias("atp"),
    )


def _oversell(availability: pl.DataFrame, *, atp: pl.DataFrame, rec: pl.DataFrame, items: pl.DataFrame,
              location_types: pl.DataFrame) -> pl.DataFrame:
    """`oversell_risk` rows (DESIGN.md §6.6): a channel publishes more than the ATP; empty when none does."""
    latest_av = latest_positions(availability) if availability.height else availability
    if not latest_av.height:
        return pl.DataFrame()
    ov = (
        latest_av.select("sku", "location", pl.col("system").alias("other_system"), pl.col("available").alias("other_qty"), pl.col("lineage").alias("other_lineage"))
        .join(atp, on=["sku", "location"], how="left")
        .join(rec.select("sku", "location", "_record_unit_cost", "record_lineage"), on=["sku", "location"], how="left")
        .join(items, on="sku", how="left")
        .join(location_types, on="location", how="left")
        .with_columns(pl.col("atp").fill_null(0))
        .with_columns((pl.col("other_qty") - pl.col("atp")).alias("delta"))
        .filter(pl.col("delta") > 0)
    )
    return ov.with_columns(
        pl.lit("oversell_risk").alias("class"),
        pl.col("atp").alias("record_qty"),
        pl.lit(None, dtype=pl.Int64).alias("raw_record_qty"),
        pl.lit(None, dtype=pl.Int64).alias("raw_other_qty"),
        pl.lit(None, dtype=pl.Int64).alias("raw_delta"),
        pl.lit(0.0).alias("tolerance"),
        pl.lit(None, dtype=pl.Int64).alias("explained_qty"),
        pl.coalesce(pl.col("unit_cost"), pl.col("_record_unit_cost")).alias("unit_cost"),
    )


def _discrepancy_table(frames: list[pl.DataFrame], params: ReconcileParams) -> pa.Table:
    """The `discrepancies` rows of the classified pairs and oversell risks, with the run's columns and value_delta."""
    common = [
        pl.lit(params.snapshot_date).alias("snapshot_date"),
        pl.lit(params.record_system).alias("record_system"),
        pl.lit(params.run_id).alias("run_id"),
        pl.lit(None, dtype=pl.Date).alias("first_seen"),
        pl.lit(None, dtype=pl.Int32).alias("age_days"),
    ]
    cols = [f.name for f in DISCREPANCIES]
    out_frames = []
    for f in frames:
        # Rounded to 1/100 of a cent: float noise (-9103.289999999999) is not a figure finance signs.
        f = f.with_columns(*common, (pl.col("delta") * pl.col("unit_cost")).round(4).alias("value_delta"))
        for name in cols:
            if name not in f.columns:
                f = f.with_columns(pl.lit(None).alias(name))
        out_frames.append(f.select(cols))
    discrepancies = pl.concat(out_frames, how="vertical_relaxed")
    return discrepancies.to_arrow().cast(DISCREPANCIES) if discrepancies.height else DISCREPANCIES.empty_table()


def _snapshot(rolled: pl.DataFrame, *, rec: pl.DataFrame, atp: pl.DataFrame, location_types: pl.DataFrame,
              discrepant: pl.DataFrame, params: ReconcileParams) -> pl.DataFrame:
    """One snapshot row per key seen in any positions system, with every system's figure and a status."""
    per_sys = rolled.group_by("sku", "location").agg(
        pl.struct(pl.col("system").alias("key"), pl.col("qty_t").alias("value")).sort_by("system").alias("qty_by_system"),
        pl.col("system").unique().sort().alias("systems_reporting"),
    )
    flagged = discrepant.select("sku", "location").unique().with_columns(pl.lit(True).alias("_disc"))
    return (
        per_sys.join(rec.select("sku", "location", "record_qty", "reserved"), on=["sku", "location"], how="left")
        .join(atp, on=["sku", "location"], how="left")
        .join(location_types, on="location", how="left")
        .join(flagged, on=["sku", "location"], how="left")
        .with_columns(
            pl.col("record_qty").alias("on_hand"),
            pl.when(pl.col("record_qty").is_null()).then(pl.lit("not_in_record"))
            .when(pl.col("_disc").fill_null(False)).then(pl.lit("discrepant"))
            .when(pl.col("systems_reporting").list.len() == 1).then(pl.lit("record_only"))
            .otherwise(pl.lit("matched")).alias("status"),
            pl.lit(params.snapshot_date).alias("snapshot_date"),
            pl.lit(params.run_id).alias("run_id"),
        )
    )


def _snapshot_to_arrow(snap: pl.DataFrame) -> pa.Table:
    """The snapshot as INVENTORY_SNAPSHOT: `qty_by_system` from a list of structs to a map."""
    if snap.height == 0:
        return INVENTORY_SNAPSHOT.empty_table()
    names = [f.name for f in INVENTORY_SNAPSHOT]
    table = snap.select(names).to_arrow()
    lst = table.column("qty_by_system").combine_chunks()
    entries = lst.flatten()
    mapped = pa.MapArray.from_arrays(lst.offsets, entries.field("key"), entries.field("value"))
    table = table.set_column(names.index("qty_by_system"), "qty_by_system", mapped)
    return table.cast(INVENTORY_SNAPSHOT)
