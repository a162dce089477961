"""Roll positions to the cut-off, compare every system with the record system, classify.

This is DESIGN.md §6 as pure polars functions over one hash bucket of (sku, location) keys; the
Beam transform in `pipelines/batch.py` shuffles by bucket and calls `reconcile_bucket` on each.

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
import gc
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics

from invrecon.schemas import DISCREPANCIES, IN_TRANSIT, INVENTORY_SNAPSHOT, MOVEMENT, POSITION
from invrecon.transforms.buckets import Bucketed, ShuffleBuckets, bucket_tables, concat_tables, split_by_bucket
from invrecon.transforms.canonical import load_items

__all__ = [
    "OpenInTransit",
    "ReconcileBySkuLocation",
    "ReconcileParams",
    "Tolerance",
    "discrepancy_class",
    "latest_positions",
    "open_in_transit",
    "reconcile_bucket",
    "roll_to_cutoff",
    "tolerance_exprs",
]

UTC = dt.UTC


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """One tolerance rule: the first whose `match` fields all equal the pair's wins."""

    match: tuple[tuple[str, str], ...]
    abs: float
    pct: float


@dataclasses.dataclass(frozen=True)
class ReconcileParams:
    record_system: str
    cutoff: dt.datetime  # UTC, aware
    snapshot_date: dt.date
    tolerances: tuple[Tolerance, ...] = ()
    run_id: str = ""

    def __post_init__(self) -> None:
        if self.cutoff.tzinfo is None:
            raise ValueError("`cutoff` must be timezone-aware (UTC)")
        for t in self.tolerances:
            if t.abs < 0 or t.pct < 0:
                raise ValueError("tolerance `abs` and `pct` must be >= 0")


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
            pl.col("event_type").is_in(["receipt", "transfer_in"])
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


def tolerance_exprs(tolerances: Sequence[Tolerance]) -> tuple[pl.Expr, pl.Expr]:
    """(abs, pct) of the first tolerance rule whose `match` fields all equal a row's (0, 0 when none does).

    A `system` match reads the row's `other_system`; the nightly reconcile and the stream's
    divergence alerts both use this, so a tolerance means the same in each.
    """
    abs_e: pl.Expr | None = None
    pct_e: pl.Expr | None = None
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
    abs_e = chain_a.otherwise(pl.lit(0.0))
    pct_e = chain_p.otherwise(pl.lit(0.0))
    return abs_e, pct_e


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
    R = params.record_system
    # A positions system's record without on_hand (an 846 QTY 33 "available" line) says nothing
    # about stock on hand; it stays in the positions table but is not reconciled.
    positions = positions.filter(pl.col("on_hand").is_not_null())
    latest = latest_positions(positions)
    rolled = roll_to_cutoff(latest, movements, params.cutoff)
    keys = rolled.select("sku", "location").unique()
    rec = rolled.filter(pl.col("system") == R).select(
        "sku", "location",
        pl.col("qty_t").alias("record_qty"),
        pl.col("on_hand").alias("raw_record_qty"),
        pl.col("reserved_t").alias("reserved"),
        pl.col("unit_cost").alias("_record_unit_cost"),
        pl.col("lineage").alias("record_lineage"),
    )
    oth = rolled.filter(pl.col("system") != R).select(
        "sku", "location",
        pl.col("system").alias("other_system"),
        pl.col("qty_t").alias("other_qty"),
        pl.col("on_hand").alias("raw_other_qty"),
        pl.col("lineage").alias("other_lineage"),
    )
    cov = coverage.filter(pl.col("system") != R).select(pl.col("system").alias("other_system"), "location").unique()
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
    pairs = pairs.join(inbound, on=["sku", "location"], how="left").join(outbound, on=["sku", "location"], how="left")

    abs_e, pct_e = tolerance_exprs(params.tolerances)
    r0 = pl.col("record_qty").fill_null(0)
    s0 = pl.col("other_qty").fill_null(0)
    delta = s0 - r0
    raw_delta = pl.col("raw_other_qty").fill_null(0) - pl.col("raw_record_qty").fill_null(0)
    pairs = pairs.with_columns(
        delta.alias("delta"),
        raw_delta.alias("raw_delta"),
        pl.max_horizontal(abs_e, pct_e * r0.abs().cast(pl.Float64)).alias("tolerance"),
        # The same rule on R's raw (as-of) figure: what the raw difference is judged by (timing).
        pl.max_horizontal(abs_e, pct_e * pl.col("raw_record_qty").fill_null(0).abs().cast(pl.Float64)).alias("_raw_tolerance"),
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
    pairs = pairs.with_columns(
        pl.when(pl.col("class") == "in_transit").then(transit_qty)
        .when(pl.col("class") == "timing").then(pl.col("raw_delta") - pl.col("delta"))
        .otherwise(None).cast(pl.Int64).alias("explained_qty"),
        pl.coalesce(pl.col("unit_cost"), pl.col("_record_unit_cost")).alias("unit_cost"),
    )
    disc = pairs.filter(pl.col("class").is_not_null())

    # ATP and oversell risk (DESIGN.md §6.6).
    atp = rec.join(items.select("sku", "safety_stock"), on="sku", how="left").select(
        "sku", "location",
        pl.max_horizontal(
            pl.lit(0),
            pl.col("record_qty") - pl.col("reserved").fill_null(0) - pl.col("safety_stock").fill_null(0).cast(pl.Int64),
        ).alias("atp"),
    )
    latest_av = latest_positions(availability) if availability.height else availability
    oversell = pl.DataFrame()
    if latest_av.height:
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
        oversell = ov.with_columns(
            pl.lit("oversell_risk").alias("class"),
            pl.col("atp").alias("record_qty"),
            pl.lit(None, dtype=pl.Int64).alias("raw_record_qty"),
            pl.lit(None, dtype=pl.Int64).alias("raw_other_qty"),
            pl.lit(None, dtype=pl.Int64).alias("raw_delta"),
            pl.lit(0.0).alias("tolerance"),
            pl.lit(None, dtype=pl.Int64).alias("explained_qty"),
            pl.coalesce(pl.col("unit_cost"), pl.col("_record_unit_cost")).alias("unit_cost"),
        )

    common = [
        pl.lit(params.snapshot_date).alias("snapshot_date"),
        pl.lit(R).alias("record_system"),
        pl.lit(params.run_id).alias("run_id"),
        pl.lit(None, dtype=pl.Date).alias("first_seen"),
        pl.lit(None, dtype=pl.Int32).alias("age_days"),
    ]
    cols = [f.name for f in DISCREPANCIES]
    frames = [disc]
    if oversell.height:
        frames.append(oversell)
    out_frames = []
    for f in frames:
        # Rounded to 1/100 of a cent: float noise (-9103.289999999999) is not a figure finance signs.
        f = f.with_columns(*common, (pl.col("delta") * pl.col("unit_cost")).round(4).alias("value_delta"))
        for name in cols:
            if name not in f.columns:
                f = f.with_columns(pl.lit(None).alias(name))
        out_frames.append(f.select(cols))
    discrepancies = pl.concat(out_frames, how="vertical_relaxed") if out_frames else pl.DataFrame()
    disc_table = discrepancies.to_arrow().cast(DISCREPANCIES) if discrepancies.height else DISCREPANCIES.empty_table()

    # Snapshot: one row per key seen in any positions system.
    per_sys = rolled.group_by("sku", "location").agg(
        pl.struct(pl.col("system").alias("key"), pl.col("qty_t").alias("value")).sort_by("system").alias("qty_by_system"),
        pl.col("system").unique().sort().alias("systems_reporting"),
    )
    flagged = disc.select("sku", "location").unique().with_columns(pl.lit(True).alias("_disc"))
    snap = (
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
            *common[:1],
            pl.lit(params.run_id).alias("run_id"),
        )
    )
    snap_table = _snapshot_to_arrow(snap)
    return snap_table, disc_table


def _snapshot_to_arrow(snap: pl.DataFrame) -> pa.Table:
    if snap.height == 0:
        return INVENTORY_SNAPSHOT.empty_table()
    names = [f.name for f in INVENTORY_SNAPSHOT]
    table = snap.select(names).to_arrow()
    lst = table.column("qty_by_system").combine_chunks()
    entries = lst.flatten()
    mapped = pa.MapArray.from_arrays(lst.offsets, entries.field("key"), entries.field("value"))
    table = table.set_column(names.index("qty_by_system"), "qty_by_system", mapped)
    return table.cast(INVENTORY_SNAPSHOT)


# --------------------------------------------------------------------------- Beam transforms
# The pure functions above run inside these, one hash bucket of keys at a time.

class OpenInTransitFn(beam.DoFn):
    """Join shipments with their receipts within a shipment-id bucket; emit what is still open."""

    def __init__(self, cutoff: dt.datetime):
        self.cutoff = cutoff

    def process(self, element: tuple[int, Iterable[tuple[str, bytes]]]) -> Iterator[pa.Table]:
        _, tagged = element
        tagged = bucket_tables(tagged)
        its = concat_tables((t for tag, t in tagged if tag == "in_transit"), IN_TRANSIT)
        if its.height == 0:
            return
        rec = concat_tables((t for tag, t in tagged if tag == "receipts"), MOVEMENT)
        out = open_in_transit(its, rec, self.cutoff)
        if out.height:
            yield out.to_arrow().cast(IN_TRANSIT)


def _receipts(table: pa.Table) -> pa.Table:
    df = pl.from_arrow(table).filter(
        pl.col("event_type").is_in(["receipt", "transfer_in"]) & pl.col("reference").is_not_null()
    )
    return df.to_arrow().cast(MOVEMENT)


def _both_ends(table: pa.Table, buckets: int) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
    """An open shipment matters at both its ends: route it to the from and the to bucket.

    The tag says which end the copy is for, so the bucket counts it once (inbound or outbound).
    """
    df = pl.from_arrow(table)
    for end in ("from_location", "to_location"):
        part = df.filter(pl.col(end).is_not_null())
        if part.height:
            yield from split_by_bucket(part.to_arrow(), ["sku", end], buckets, f"in_transit_{end}")


# The columns `reconcile_bucket` reads: the only ones that cross the (sku, location) shuffle.
POSITION_READ = ("system", "sku", "location", "as_of", "on_hand", "reserved", "available", "unit_cost", "file", "locator")
MOVEMENT_READ = ("sku", "location", "occurred_at", "event_id", "event_type", "qty", "reserved_delta")


class ReconcileBucketFn(beam.DoFn):
    """Reconcile one hash bucket of (sku, location) keys (DESIGN.md §6)."""

    def __init__(self, params: ReconcileParams):
        self.params = params
        self.keys = Metrics.counter(self.__class__, "keys_reconciled")
        self.found = Metrics.counter(self.__class__, "discrepancies_found")

    def process(self, element, items: pa.Table, location_types: pa.Table, coverage: list[tuple[str, str]]) -> Iterator:
        _, tagged = element
        tagged = bucket_tables(tagged)
        positions = concat_tables((t for tag, t in tagged if tag == "positions"), POSITION)
        if positions.height == 0 and not any(tag == "availability" for tag, _ in tagged):
            return
        availability = concat_tables((t for tag, t in tagged if tag == "availability"), POSITION)
        movements = concat_tables((t for tag, t in tagged if tag == "movements"), MOVEMENT)
        from_end = concat_tables((t for tag, t in tagged if tag == "in_transit_from_location"), IN_TRANSIT).with_columns(pl.lit(None, dtype=pl.String).alias("to_location"))
        to_end = concat_tables((t for tag, t in tagged if tag == "in_transit_to_location"), IN_TRANSIT).with_columns(pl.lit(None, dtype=pl.String).alias("from_location"))
        in_transit = pl.concat([from_end, to_end])
        cov = pl.DataFrame(coverage, schema={"system": pl.String, "location": pl.String}, orient="row")
        snap, disc = reconcile_bucket(
            positions=positions,
            availability=availability,
            movements=movements,
            in_transit=in_transit,
            items=pl.from_arrow(items),
            location_types=pl.from_arrow(location_types),
            coverage=cov,
            params=self.params,
        )
        self.keys.inc(snap.num_rows)
        self.found.inc(disc.num_rows)
        if snap.num_rows:
            yield snap
        if disc.num_rows:
            yield beam.pvalue.TaggedOutput("discrepancies", disc)
        del tagged, positions, availability, movements, in_transit, snap, disc
        gc.collect(1)  # a bucket's frames in reference cycles go now, before the next bucket


def _coverage(table: pa.Table) -> list[tuple[str, str]]:
    df = pl.from_arrow(table).filter(pl.col("on_hand").is_not_null()).select("system", "location").unique()
    return [tuple(r) for r in df.iter_rows()]


class _UnionFn(beam.CombineFn):
    def create_accumulator(self) -> set:
        return set()

    def add_input(self, acc: set, rows: list) -> set:
        acc.update(rows)
        return acc

    def merge_accumulators(self, accs: Iterable[set]) -> set:
        return set().union(*accs)

    def extract_output(self, acc: set) -> list:
        return sorted(acc)


def _load_items(uri: str) -> pa.Table:
    return load_items(uri).to_arrow()


def _location_types(uri: str) -> pa.Table:
    with fsspec.open(uri, "rb") as f:
        df = pl.read_csv(f.read(), infer_schema=False)
    return df.select("location", "location_type").unique("location", keep="first").to_arrow()


@dataclasses.dataclass
class OpenInTransit(beam.PTransform):
    """(shipment lines, movements) -> in-transit lines still open at the cut-off.

    Shipments and receipts meet in a bucket of the shipment id (a receipt's `reference`).
    """

    buckets: int
    cutoff: dt.datetime
    spill: str | None = None  # a folder: the shuffle goes through files there (`ShuffleBuckets`)

    def expand(self, pcolls):
        shipments, movements = pcolls
        return (
            (
                shipments | "KeyShipments" >> beam.FlatMap(split_by_bucket, ["shipment_id"], self.buckets, "in_transit").with_output_types(Bucketed),
                movements
                | "SelectReceipts" >> beam.Map(_receipts).with_output_types(pa.Table)
                | "KeyReceipts" >> beam.FlatMap(split_by_bucket, ["reference"], self.buckets, "receipts").with_output_types(Bucketed),
            )
            | "GroupShipments" >> ShuffleBuckets(self.spill)
            | "FindOpen" >> beam.ParDo(OpenInTransitFn(self.cutoff)).with_output_types(pa.Table)
        )


@dataclasses.dataclass
class ReconcileBySkuLocation(beam.PTransform):
    """{positions, availability, movements, open_in_transit} -> snapshot and discrepancies.

    Every input is shuffled by a stable hash bucket of (sku, location) (an open shipment to both
    its ends); `reconcile_bucket` runs on each bucket with the items master, the location types
    and the (system, location) coverage of the whole run as side inputs. Returns outputs
    `snapshot` and `discrepancies`.
    """

    buckets: int
    params: ReconcileParams
    items_uri: str
    locations_uri: str
    spill: str | None = None  # a folder: the shuffle goes through files there (`ShuffleBuckets`)

    def expand(self, inputs: dict):
        B = self.buckets
        p = inputs["positions"].pipeline
        coverage = inputs["positions"] | "SystemLocations" >> beam.Map(_coverage) | "UnionCoverage" >> beam.CombineGlobally(_UnionFn())
        items = p | "ItemsUri" >> beam.Create([self.items_uri]) | "LoadItems" >> beam.Map(_load_items).with_output_types(pa.Table)
        loc_types = p | "LocationsUri" >> beam.Create([self.locations_uri]) | "LoadLocationTypes" >> beam.Map(_location_types).with_output_types(pa.Table)
        keyed = (
            inputs["positions"] | "KeyPositions" >> beam.FlatMap(split_by_bucket, ["sku", "location"], B, "positions", keep=POSITION_READ).with_output_types(Bucketed),
            inputs["availability"] | "KeyAvailability" >> beam.FlatMap(split_by_bucket, ["sku", "location"], B, "availability", keep=POSITION_READ).with_output_types(Bucketed),
            inputs["movements"] | "KeyMovements" >> beam.FlatMap(split_by_bucket, ["sku", "location"], B, "movements", keep=MOVEMENT_READ).with_output_types(Bucketed),
            inputs["open_in_transit"] | "KeyInTransitEnds" >> beam.FlatMap(_both_ends, B).with_output_types(Bucketed),
        )
        return (
            keyed
            | "GroupBySkuLocation" >> ShuffleBuckets(self.spill)
            | "ReconcileBuckets" >> beam.ParDo(
                ReconcileBucketFn(self.params),
                items=beam.pvalue.AsSingleton(items),
                location_types=beam.pvalue.AsSingleton(loc_types),
                coverage=beam.pvalue.AsSingleton(coverage),
            ).with_output_types(pa.Table, discrepancies=pa.Table).with_outputs("discrepancies", main="snapshot")
        )
