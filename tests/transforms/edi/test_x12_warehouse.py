"""940 / 944 / 945 / 947 -> movement records: reservations, receipts, shipments, signed adjustments."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12_warehouse import map_940, map_944, map_945, map_947
from tests.transforms.edi.helpers import expect, item, load, render, transactions, tx, x12

# The hand-written fixtures' items: the bare case code (implied UC) with a vendor part, the case GTIN.
UC_V100 = item("UC", "036000291452", "VN", "V-100")
UK_CASE = item("UK", "10036000291459")


# Each hand-written fixture: the fields its records share, then each record's own.
FIXTURE_RECORDS = {
    "940-reservations.edi": (
        x12(104, kind="movement", set="940", event_type="reservation", qty_type="ordered", location="E1", to_location="C77",
            reference="ORD-5", occurred_at="2026-03-03T09:00:00"),
        [dict(UC_V100, segment=8, qty=10, uom="EA"), dict(UK_CASE, segment=10, qty=2, uom="CA")],
    ),
    # the receipts reference the ASN
    "944-receipts.edi": (
        x12(105, kind="movement", set="944", event_type="receipt", qty_type="received", location="E1", from_location="VP1",
            shipment_id="ASN-77", reference="ASN-77", occurred_at="2026-03-04T10:15:00"),
        [dict(UC_V100, segment=7, qty=24, uom="EA"), dict(item("EN", "4006381333931"), segment=8, qty=6, uom="CA")],
    ),
    # shipments use the units shipped (W1203) and the G62 time
    "945-shipments.edi": (
        x12(106, kind="movement", set="945", event_type="shipment", qty_type="shipped", location="E1", to_location="C77",
            shipment_id="SHP-3", reference="SHP-3", occurred_at="2026-03-05T16:30:00"),
        [dict(UC_V100, segment=9, qty=9, uom="EA")],
    ),
    # adjustments are signed by their reason code
    "947-adjustments.edi": (
        x12(107, kind="movement", set="947", event_type="adjustment", qty_type="adjusted", location="E1", reference="ADJ-1",
            occurred_at="2026-03-06T00:00:00"),
        [
            # AV damaged in transit: written unsigned, can only lower stock
            dict(item("UC", "036000291452"), segment=6, qty=-5, uom="EA"),
            # 56 book adjustment increase
            dict(item("VN", "V-100"), segment=7, qty=3, uom="EA"),
            # AA physical count: the written sign stands
            dict(UK_CASE, segment=8, qty=-2, uom="CA"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_RECORDS))
def test_fixture_records_exact(name):
    common, lines = FIXTURE_RECORDS[name]
    assert load(name) == expect(name, common, *lines)


HEADER = [["N1", "WH", "Main DC", "92", "DC01"], ["N1", "ST", "Store 7", "92", "S007"], ["N1", "SF", "Vendor", "92", "V1"]]


@pytest.mark.parametrize("mapper, set_id, head, line, want", [
    (map_940, "940", ["W05", "N", "ORD-1"], ["W01", "4", "EA", "036000291452"],
     dict(event_type="reservation", qty_type="ordered", reference="ORD-1", to_location="S007", qty=4,
          occurred_at="2026-11-30T21:00:00")),
    (map_944, "944", ["W17", "C", "20261130", "R-1", "", "ASN-1", "", "0800"], ["W07", "4", "EA", "036000291452"],
     dict(event_type="return", qty_type="received", reference="ASN-1", from_location="V1", qty=4,
          occurred_at="2026-11-30T08:00:00")),
    (map_945, "945", ["W06", "N", "D-1", "20261130", "SHP-1"], ["W12", "CC", "4", "4", "", "EA", "036000291452"],
     dict(event_type="shipment", qty_type="shipped", reference="SHP-1", to_location="S007", qty=4,
          occurred_at="2026-11-30T00:00:00")),
    (map_947, "947", ["W15", "20261130", "ADJ-1"], ["W19", "AV", "4", "EA", "036000291452"],
     dict(event_type="adjustment", qty_type="adjusted", reference="ADJ-1", qty=-4, occurred_at="2026-11-30T00:00:00")),
], ids=["940", "944-customer-return", "945", "947-decrease"])
def test_each_mapper_reads_its_header_parties_and_lines(mapper, set_id, head, line, want):
    """The mappers alone: the warehouse is N1 WH; the counterparty is the set's own; a 940 has no
    date of its own and takes the group's (GS04/05)."""
    (t,) = transactions(render([tx(set_id, 1, [head, *HEADER, line])], gs_code="OW"))
    problems: list = []
    (rec,) = mapper(t, MapContext(file="f.edi"), problems)
    assert problems == [] and rec["location"] == "DC01" and rec["item_ids"] == item("UC", "036000291452")["item_ids"]
    assert {k: rec[k] for k in want} == want
