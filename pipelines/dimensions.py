"""The `items` and `locations` dimensions a run publishes beside its facts.

Built by the launcher from the run's config (the items master and both crosswalks), staged as one
small file each and published with the run's commit (`pipelines.publish`), like every other
table: O(the config's master data) per run, readable wherever the output lives (a local folder or
object storage), with no path back to the config. The warehouse's `items` / `locations` views
keep, per SKU / location, the row of the latest run date that had it (`pipelines.warehouse`).

    items      sku, description, category, abc_class, unit_cost, currency, safety_stock,
               in_master, ids (the crosswalk ids that map to the SKU)
    locations  location, location_type, codes (system and source code of every crosswalk row)

Why published, not read from the config's files by the views: the warehouse of an output in
object storage is often opened on another machine, where the config's relative paths mean
nothing; and a view over today's files would re-describe last month's discrepancies with
today's master data, where the published rows say what each run used.
"""

from __future__ import annotations

import fsspec
import polars as pl
import pyarrow as pa

from invrecon.schemas import ITEMS, LOCATIONS
from invrecon.transforms.canonical import load_items, shared_crosswalks

__all__ = ["dimension_tables", "items_table", "locations_table"]


def _descriptions(uri: str) -> pl.DataFrame:
    """sku, description of the items master (null when it has no description column)."""
    with fsspec.open(uri, "rb") as f:
        df = pl.read_csv(f.read(), infer_schema=False)
    desc = pl.col("description").str.strip_chars() if "description" in df.columns else pl.lit(None, dtype=pl.String)
    return df.select(pl.col("sku").str.strip_chars(), desc.alias("description"))


def _blank_to_null(*names: str) -> list[pl.Expr]:
    return [pl.when(pl.col(n).str.len_chars() > 0).then(pl.col(n)).alias(n) for n in names]


def items_table(items_uri: str, sku_crosswalk: str, location_crosswalk: str) -> pa.Table:
    """Every SKU of the items master or the SKU crosswalk, sorted by sku (ITEMS).

    A SKU only the crosswalk names has `in_master` false and null master fields (its
    discrepancies are valued at the record system's cost).

    Raises:
      CrosswalkError: the items master or a crosswalk is invalid (the batch checked them first).
    """
    master = load_items(items_uri).join(_descriptions(items_uri), on="sku", how="left").with_columns(pl.lit(True).alias("in_master"))
    xwalk = shared_crosswalks(sku_crosswalk, location_crosswalk).sku
    ids = xwalk.sort("id_type", "id_value").group_by("sku").agg(
        pl.struct("id_type", "id_value", "units_per_id").alias("ids"))
    df = (
        master.join(ids, on="sku", how="full", coalesce=True)
        .with_columns(pl.col("in_master").fill_null(False), *_blank_to_null("description"))
        .sort("sku")
    )
    return df.select(ITEMS.names).to_arrow().cast(ITEMS)


def locations_table(sku_crosswalk: str, location_crosswalk: str) -> pa.Table:
    """Every location of the location crosswalk, sorted (LOCATIONS).

    Its type is the first crosswalk row's, as the reconciliation takes it (`location_type` of the
    facts).
    """
    loc = shared_crosswalks(sku_crosswalk, location_crosswalk).location
    types = loc.unique("location", keep="first", maintain_order=True).select("location", *_blank_to_null("location_type"))
    codes = loc.sort("system", "source_location").group_by("location").agg(pl.struct("system", "source_location").alias("codes"))
    df = types.join(codes, on="location", how="left").sort("location")
    return df.select(LOCATIONS.names).to_arrow().cast(LOCATIONS)


def dimension_tables(cfg) -> dict[str, pa.Table]:
    """table -> rows of the dimensions a run of `cfg` publishes (`items`, `locations`)."""
    return {
        "items": items_table(cfg.items, cfg.sku_crosswalk, cfg.location_crosswalk),
        "locations": locations_table(cfg.sku_crosswalk, cfg.location_crosswalk),
    }
