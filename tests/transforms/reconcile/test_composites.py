"""OpenInTransit and ReconcileBySkuLocation on the in-process runner, on hand-built canonical tables."""

from __future__ import annotations

import datetime as dt
import pathlib

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.reconcile.bucket import ReconcileParams
from invrecon.transforms.reconcile.composites import OpenInTransit, ReconcileBySkuLocation
from tests.transforms.reconcile.helpers import DAY, DEFAULT, EVENING, STORE_TOL, T, mv, pos, shipment, table


def _rows(pcoll, label: str, cols: tuple[str, ...]):
    """The rows of a PCollection of tables as tuples of `cols`."""
    return pcoll | label >> beam.FlatMap(lambda t: [tuple(r[c] for c in cols) for r in t.to_pylist()])


def _create(p, label: str, rows: list[dict], schema: pa.Schema):
    return p | label >> beam.Create([table(rows, schema)])


@pytest.mark.parametrize("spill", [False, True], ids=["runner-shuffle", "spilled"])
def test_open_in_transit_keeps_what_no_receipt_closed_by_the_cutoff(tmp_path: pathlib.Path, spill: bool):
    later = T + dt.timedelta(hours=1)
    shipments = [
        shipment("ASN1", "A", "DC1", "S1", 10),  # 4 received by T, 6 after: 6 open
        shipment("ASN2", "B", "DC1", "S1", 5, shipped_at=later),  # shipped after T: not yet in transit
        shipment("ASN3", "A", "DC1", "S1", 3),  # received whole by T
    ]
    movements = [
        mv("A", "S1", "receipt", 4, EVENING + dt.timedelta(hours=1), reference="ASN1"),
        mv("A", "S1", "receipt", 6, later, reference="ASN1"),
        mv("A", "S1", "transfer_in", 3, EVENING + dt.timedelta(hours=2), reference="ASN3"),
        mv("A", "S1", "receipt", 10, EVENING, reference=None),  # no shipment named: closes nothing
        mv("A", "S1", "sale", -2, EVENING, reference="ASN1"),  # not a receipt
    ]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = (_create(p, "Shipments", shipments, IN_TRANSIT), _create(p, "Movements", movements, MOVEMENT)) | "OpenInTransit" >> OpenInTransit(
            buckets=4, cutoff=T, spill=str(tmp_path / "shuffle") if spill else None)
        assert_that(_rows(out, "Rows", ("shipment_id", "sku", "from_location", "to_location", "qty")),
                    equal_to([("ASN1", "A", "DC1", "S1", 6)]))


def _reconciled(p, tmp_path: pathlib.Path):
    items = tmp_path / "items.csv"
    items.write_text("sku,abc_class,category,unit_cost,currency,safety_stock\nA,B,x,2.0,USD,0\nB,A,x,10.0,USD,0\n")
    locations = tmp_path / "locations.csv"
    locations.write_text("system,source_location,location,location_type\nerp,1,S1,store\nerp,2,DC1,dc\n")
    positions = [
        pos("erp", "A", "S1", 16, EVENING), pos("store", "A", "S1", 10, EVENING),  # 6 on the way from DC1
        pos("erp", "B", "S1", 4, EVENING), pos("store", "B", "S1", 4, EVENING),
        pos("erp", "A", "DC1", 12, EVENING, reserved=3), pos("wms", "A", "DC1", 12, EVENING),
    ]
    availability = [{**pos("commerce", "A", "DC1", None, EVENING, available=10), "source": "commerce"}]  # ATP 12 - 3 = 9
    params = ReconcileParams(record_system="erp", cutoff=T, snapshot_date=DAY, tolerances=(STORE_TOL, DEFAULT), run_id="r1")
    return {
        "positions": _create(p, "Positions", positions, POSITION),
        "availability": _create(p, "Availability", availability, POSITION),
        "movements": _create(p, "Movements", [mv("B", "S1", "sale", -1, T + dt.timedelta(hours=1))], MOVEMENT),
        "open_in_transit": _create(p, "OpenLines", [shipment("ASN1", "A", "DC1", "S1", 6)], IN_TRANSIT),
    } | "Reconcile" >> ReconcileBySkuLocation(buckets=4, params=params, items_uri=str(items), locations_uri=str(locations),
                                              spill=str(tmp_path / "shuffle"))


def test_reconcile_by_sku_location_writes_the_discrepancies_of_every_bucket(tmp_path: pathlib.Path):
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = _reconciled(p, tmp_path)
        cols = ("sku", "location", "other_system", "class", "record_qty", "other_qty", "delta", "explained_qty", "value_delta", "run_id")
        assert_that(_rows(out.discrepancies, "DiscrepancyRows", cols), equal_to([
            ("A", "S1", "store", "in_transit", 16, 10, -6, 6, -12.0, "r1"),
            ("A", "DC1", "commerce", "oversell_risk", 9, 10, 1, None, 2.0, "r1"),
        ]), label="CheckDiscrepancies")


def test_reconcile_by_sku_location_writes_one_snapshot_row_per_key(tmp_path: pathlib.Path):
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = _reconciled(p, tmp_path)
        cols = ("sku", "location", "location_type", "on_hand", "reserved", "atp", "status", "snapshot_date")
        assert_that(_rows(out.snapshot, "SnapshotRows", cols), equal_to([
            ("A", "S1", "store", 16, None, 16, "discrepant", DAY),
            ("B", "S1", "store", 4, None, 4, "matched", DAY),  # the sale after T is past the cut-off: not counted
            ("A", "DC1", "dc", 12, 3, 9, "matched", DAY),
        ]), label="CheckSnapshot")


def test_composites_refuse_bad_configuration():
    with pytest.raises(ValueError, match="buckets"):
        OpenInTransit(buckets=0, cutoff=T)
    with pytest.raises(ValueError, match="cutoff"):
        OpenInTransit(buckets=4, cutoff=dt.datetime(2026, 11, 30))
    params = ReconcileParams(record_system="erp", cutoff=T, snapshot_date=DAY)
    with pytest.raises(ValueError, match="buckets"):
        ReconcileBySkuLocation(buckets=0, params=params, items_uri="i.csv", locations_uri="l.csv")
    with pytest.raises(TypeError):
        OpenInTransit(4, T)  # type: ignore[misc]
