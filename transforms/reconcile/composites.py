"""The batch's reconcile composites: OpenInTransit and ReconcileBySkuLocation, one hash bucket at a time.

Both shuffle their inputs by a stable hash bucket (`transforms.buckets`) and run the pure
functions of `transforms.reconcile.roll` and `transforms.reconcile.bucket` on each bucket.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
from collections.abc import Iterable, Iterator

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
from apache_beam.metrics import Metrics

from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.buckets import Bucketed, ShuffleBuckets, bucket_tables, concat_tables, split_by_bucket
from invrecon.transforms.canonical import load_items
from invrecon.transforms.reconcile.bucket import ReconcileParams, reconcile_bucket
from invrecon.transforms.reconcile.roll import RECEIPT_TYPES, open_in_transit

__all__ = ["MOVEMENT_READ", "POSITION_READ", "OpenInTransit", "OpenInTransitFn", "ReconcileBucketFn", "ReconcileBySkuLocation"]

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
    """The movements that can close a shipment: receipts with a reference (the shipment id)."""
    df = pl.from_arrow(table).filter(pl.col("event_type").is_in(RECEIPT_TYPES) & pl.col("reference").is_not_null())
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


@dataclasses.dataclass(kw_only=True)
class OpenInTransit(beam.PTransform):
    """(shipment lines, movements) -> in-transit lines still open at the cut-off.

    Shipments and receipts meet in a bucket of the shipment id (a receipt's `reference`).

    Example:
        open_lines = (shipments, movements) | "OpenInTransit" >> OpenInTransit(buckets=32, cutoff=T)
    """

    buckets: int
    cutoff: dt.datetime
    spill: str | None = None  # a folder: the shuffle goes through files there (`ShuffleBuckets`)

    def __post_init__(self) -> None:
        if self.buckets <= 0:
            raise ValueError("`buckets` must be > 0")
        if self.cutoff.tzinfo is None:
            raise ValueError("`cutoff` must be timezone-aware (UTC)")

    def expand(self, pcolls):
        shipments, movements = pcolls
        return (
            (
                shipments | "KeyShipments" >> beam.FlatMap(split_by_bucket, ["shipment_id"], self.buckets, "in_transit").with_output_types(Bucketed),
                movements
                | "SelectReceipts" >> beam.Map(_receipts).with_output_types(pa.Table)
                | "KeyReceipts" >> beam.FlatMap(split_by_bucket, ["reference"], self.buckets, "receipts").with_output_types(Bucketed),
            )
            | "GroupShipments" >> ShuffleBuckets(spill=self.spill)
            | "FindOpen" >> beam.ParDo(OpenInTransitFn(self.cutoff)).with_output_types(pa.Table)
        )


@dataclasses.dataclass(kw_only=True)
class ReconcileBySkuLocation(beam.PTransform):
    """{positions, availability, movements, open_in_transit} -> snapshot and discrepancies.

    Every input is shuffled by a stable hash bucket of (sku, location) (an open shipment to both
    its ends); `reconcile_bucket` runs on each bucket with the items master, the location types
    and the (system, location) coverage of the whole run as side inputs. Returns outputs
    `snapshot` and `discrepancies`.

    Example:
        out = {"positions": ..., "availability": ..., "movements": ..., "open_in_transit": ...} | "Reconcile" >> (
            ReconcileBySkuLocation(buckets=32, params=params, items_uri=items_csv, locations_uri=locations_csv))
        out.snapshot, out.discrepancies
    """

    buckets: int
    params: ReconcileParams
    items_uri: str  # the items master (`canonical.load_items`)
    locations_uri: str  # a CSV with `location` and `location_type` (the location crosswalk)
    spill: str | None = None  # a folder: the shuffle goes through files there (`ShuffleBuckets`)

    def __post_init__(self) -> None:
        if self.buckets <= 0:
            raise ValueError("`buckets` must be > 0")

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
            | "GroupBySkuLocation" >> ShuffleBuckets(spill=self.spill)
            | "ReconcileBuckets" >> beam.ParDo(
                ReconcileBucketFn(self.params),
                items=beam.pvalue.AsSingleton(items),
                location_types=beam.pvalue.AsSingleton(loc_types),
                coverage=beam.pvalue.AsSingleton(coverage),
            ).with_output_types(pa.Table, discrepancies=pa.Table).with_outputs("discrepancies", main="snapshot")
        )
