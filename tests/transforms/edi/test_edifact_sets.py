"""DESADV / INVRPT / SLSRPT -> records: exact records for the hand-written EDIFACT fixtures."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi.edifact import edifact_batches, walk
from invrecon.transforms.edi.edifact_sets import MAPPERS, map_message
from invrecon.transforms.edi.records import MapContext
from tests.transforms.edi.helpers import edifact, expect, item, load


def _message(body: str, message_type: str = "INVRPT"):
    text = f"UNB+UNOA:3+A+B+260101:1200+9'UNH+1+{message_type}:D:96A:UN'{body}UNT+{body.count(chr(39)) + 2}+1'UNZ+1+9'"
    (msg,) = walk(edifact_batches([text]))
    return msg


def test_the_mapped_message_types():
    assert sorted(MAPPERS) == ["DESADV", "INVRPT", "SLSRPT"]


def test_map_message_notes_an_unmapped_type_and_a_message_without_lines():
    records, problems = map_message(_message("BGM+380+I1'", "INVOIC"), MapContext(file="f.edi"))
    assert records == [] and [(p.code, p.segment, p.tag) for p in problems] == [("unsupported_set", 2, "UNH")]
    records, problems = map_message(_message("BGM+35+R1'"), MapContext(file="f.edi"))
    assert records == [] and [p.code for p in problems] == ["no_records"]


def test_map_message_a_bad_quantity_is_a_problem_and_the_other_lines_load():
    body = "BGM+35+R1'DTM+137:20260307:102'NAD+WH+DC1'LIN+1++111:EN'QTY+145:x'LIN+2++222:EN'QTY+145:4'"
    records, problems = map_message(_message(body), MapContext(file="f.edi"))
    assert [(r["item_id"], r["qty"], r["location"], r["as_of"]) for r in records] == [("222", 4, "DC1", "2026-03-07T00:00:00")]
    assert [(p.code, p.segment, p.message) for p in problems] == [("bad_quantity", 7, "QTY quantity 'x' is not a number at segment 7")]


EN_4006 = item("EN", "4006381333931")
EN_0360 = item("EN", "036000291452")

# Each hand-written fixture of one message: the fields its records share, then each record's own.
FIXTURE_RECORDS = {
    # UNA with a decimal comma and a release character; a LOC right after a QTY locates it
    "invrpt-una-decimal-comma.edi": (
        edifact("INV1", "1", kind="position", set="INVRPT", qty_type="on_hand", as_of="2026-03-07T00:00:00"),
        [
            dict(segment=10, **item("EN", "4006381333931", "SA", "V-100"), qty=12.5, uom="KGM", location="DC-N"),
            # no LOC for this line: the NAD+WH party is the stock location
            dict(EN_0360, segment=13, qty=40, uom="PCE", location="5412345000013"),
        ],
    ),
    # sales, and negative sales as returns, per store (LOC)
    "slsrpt-stores.edi": (
        edifact("S1", "1", kind="movement", set="SLSRPT", qty_type="sold", uom="PCE", occurred_at="2026-03-10T00:00:00"),
        [
            dict(EN_4006, segment=9, qty=3, event_type="sale", location="STORE-1"),
            dict(EN_0360, segment=11, qty=1, event_type="return", location="STORE-1"),
            dict(EN_4006, segment=14, qty=2, event_type="sale", location="STORE-2"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_RECORDS))
def test_fixture_records_exact(name):
    common, lines = FIXTURE_RECORDS[name]
    assert load(name) == expect(name, common, *lines)


def test_desadv_two_interchanges_with_their_own_delimiters():
    name = "desadv-two-interchanges.edi"
    one = edifact("D1", "M1", kind="in_transit", set="DESADV", qty_type="shipped",
                  shipment_id="DN-1", reference="DN-1", from_location="SUP1", to_location="DC1",
                  shipped_at="2026-03-09T10:00:00", expected_at="2026-03-11T00:00:00")
    two = edifact("D2", "M1", kind="in_transit", set="DESADV", qty_type="shipped",
                  shipment_id="DN-2", reference="DN-2", from_location="SUP2", to_location="DC2",
                  shipped_at="2026-03-09T00:00:00")
    assert load(name) == [
        *expect(name, one,
                dict(EN_4006, segment=10, qty=48, uom="PCE"),
                # PIA B77:NB is a batch number, not an item id
                dict(segment=13, **item("EN", "036000291452", "SA", "V-9"), qty=5)),
        # UNA|^.\ ! : the released ^ stays in the id
        *expect(name, two, dict(segment=24, **item("SA", "SKU^7"), qty=7)),
    ]
