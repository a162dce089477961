"""856 / 180 -> in_transit records: the HL tree's ship-from / ship-to, ship dates, returns inbound."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12_in_transit import map_180, map_856
from tests.transforms.edi.helpers import BODY_856, CONTROL_1, expect, ids, item, load, parse, record, render, transactions, tx, x12

TRANSIT = dict(kind="in_transit", file="f.edi", standard="x12", set="856", control=CONTROL_1,
               from_location="DC01", to_location="S007", shipment_id="SHP-1", reference="SHP-1",
               shipped_at="2026-11-30T09:00:00", qty_type="shipped")


def _map(mapper, set_id: str, body: list[list[str]]) -> tuple[list[dict], list]:
    (t,) = transactions(render([tx(set_id, 1, body)], gs_code="SH"))
    problems: list = []
    return list(mapper(t, MapContext(file="f.edi"), problems)), problems


def test_856_in_transit_exact():
    out = parse(render([tx("856", 1, BODY_856)], gs_code="SH"))
    # ST=3, BSN=4, HL=5, DTM=6, N1=7, N1=8, HL=9, PRF=10, HL=11, LIN=12, SN1=13, HL, LIN, SN1=16
    assert out == [
        record(**TRANSIT, segment=13, **item("UP", "012345678905"), qty=12, uom="EA"),
        record(**TRANSIT, segment=16, **item("UK", "10012345678902"), qty=2, uom="CA"),
    ]


def test_856_without_dtm_011_ships_at_bsn_date_time():
    body = [s for s in BODY_856 if s[0] != "DTM"]
    out = parse(render([tx("856", 1, body)], gs_code="SH"))
    assert {r["shipped_at"] for r in out} == {"2026-11-30T10:15:00"}


def test_map_856_an_order_ship_to_overrides_the_shipment_and_sn1_before_lin_waits():
    """The mapper alone: an N1 ST under the order sends its items there; an SN1 written before
    its LIN takes that LIN's ids; an SN1 whose HL has no LIN is missing_item_id."""
    body = [*BODY_856[:6], ["N1", "ST", "Store 9", "92", "S009"], ["HL", "3", "2", "I"], ["SN1", "", "5", "EA"],
            ["LIN", "", "UP", "012345678905"], ["HL", "4", "2", "I"], ["SN1", "", "1", "EA"], ["CTT", "2"]]
    out, problems = _map(map_856, "856", body)
    assert [(r["segment"], r["item_id"], r["qty"], r["from_location"], r["to_location"]) for r in out] == [
        (12, "012345678905", 5, "DC01", "S009")]
    assert [(p.code, p.segment) for p in problems] == [("missing_item_id", 15)]


def test_map_180_returns_come_from_the_store_and_go_to_the_warehouse():
    body = [["BGN", "00", "RMA-1", "20261130", "0800"], ["N1", "SF", "Store 7", "92", "S007"], ["N9", "WH", "RDC"],
            ["BLI", "UP", "012345678905", "2", "EA", "", "", "", "VN", "V-1"]]
    out, problems = _map(map_180, "180", body)
    assert problems == []
    assert [(r["event_type"], r["qty_type"], r["shipment_id"], r["shipped_at"], r["from_location"], r["to_location"],
             r["item_ids"], r["qty"]) for r in out] == [
        ("return", "returned", "RMA-1", "2026-11-30T08:00:00", "S007", "RDC", ids("UP", "012345678905", "VN", "V-1"), 2)]


# Each hand-written fixture: the fields its records share, then each record's own.
FIXTURE_RECORDS = {
    # BOM, CRLF, indentation, HL parents inferred (no HL02), an order's own ship-to
    "856-bom-crlf-indent-no-hl-parents.edi": (
        x12(103, kind="in_transit", set="856", qty_type="shipped", shipment_id="ASN-77", reference="ASN-77", from_location="VP1",
            shipped_at="2026-03-02T12:00:00+00:00", expected_at="2026-03-05T00:00:00"),
        [
            # order HL 2 names its own ship-to (cross-dock store): the item under it goes there
            dict(segment=15, **item("UP", "036000291452", "VN", "V-100"), qty=24, uom="EA", to_location="S009"),
            dict(segment=20, **item("EN", "4006381333931"), qty=6, uom="CA", to_location="RDC"),
        ],
    ),
    # returns in transit, inbound; a backslash segment terminator
    "180-returns.edi": (
        x12(108, kind="in_transit", set="180", event_type="return", qty_type="returned", shipment_id="RMA-4", reference="RMA-4",
            shipped_at="2026-03-07T08:00:00", from_location="S009", to_location="RDC"),
        [dict(segment=7, **item("UP", "036000291452"), qty=3, uom="EA"),
         dict(segment=8, **item("SK", "SKU-2", "VN", "V-200"), qty=1, uom="EA")],
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_RECORDS))
def test_fixture_records_exact(name):
    common, lines = FIXTURE_RECORDS[name]
    assert load(name) == expect(name, common, *lines)
