"""Exact records for the synthetic world's 846 and 856, as `fixtures.edi_files` renders them.

The batch pipeline depends on these shapes; each test spells out every field of every record.
"""

from __future__ import annotations

from tests.transforms.edi.helpers import codes, ids, parse, record, render, tx

CONTROL_1 = {"interchange": "000000007", "group": "7", "transaction": "0001"}
CONTROL_2 = {"interchange": "000000007", "group": "7", "transaction": "0002"}

BODY_846 = [
    ["BIA", "00", "MM", "INV-20261130", "20261130", "2000"],
    ["N1", "WH", "Main DC", "92", "DC01"],
    ["LIN", "", "UP", "012345678905"],
    ["QTY", "17", "40", "EA"],
    ["QTY", "33", "35", "EA"],
    ["LIN", "", "UK", "10012345678902"],
    ["QTY", "17", "3", "CA"],
    ["CTT", "2"],
]
BODY_856 = [
    ["BSN", "00", "SHP-1", "20261130", "1015"],
    ["HL", "1", "", "S"],
    ["DTM", "011", "20261130", "0900"],
    ["N1", "SF", "Main DC", "92", "DC01"],
    ["N1", "ST", "Store 7", "92", "S007"],
    ["HL", "2", "1", "O"],
    ["PRF", "PO-9"],
    ["HL", "3", "2", "I"],
    ["LIN", "", "UP", "012345678905"],
    ["SN1", "", "12", "EA"],
    ["HL", "4", "2", "I"],
    ["LIN", "", "UK", "10012345678902"],
    ["SN1", "", "2", "CA"],
    ["CTT", "2"],
]

POS = dict(kind="position", file="f.edi", standard="x12", set="846", control=CONTROL_1,
           location="DC01", as_of="2026-11-30T20:00:00")
TRANSIT = dict(kind="in_transit", file="f.edi", standard="x12", set="856", control=CONTROL_1,
               from_location="DC01", to_location="S007", shipment_id="SHP-1", reference="SHP-1",
               shipped_at="2026-11-30T09:00:00", qty_type="shipped")


def test_846_positions_exact():
    out = parse(render([tx("846", 1, BODY_846)]))
    # ISA=1, GS=2, ST=3, BIA=4, N1=5, LIN=6, QTY=7, QTY=8, LIN=9, QTY=10
    assert out == [
        record(**POS, segment=7, item_id="012345678905", item_id_qualifier="UP",
               item_ids=ids("UP", "012345678905"), qty=40, uom="EA", qty_type="on_hand"),
        record(**POS, segment=8, item_id="012345678905", item_id_qualifier="UP",
               item_ids=ids("UP", "012345678905"), qty=35, uom="EA", qty_type="available"),
        record(**POS, segment=10, item_id="10012345678902", item_id_qualifier="UK",
               item_ids=ids("UK", "10012345678902"), qty=3, uom="CA", qty_type="on_hand"),
    ]


def test_856_in_transit_exact():
    out = parse(render([tx("856", 1, BODY_856)], gs_code="SH"))
    # ST=3, BSN=4, HL=5, DTM=6, N1=7, N1=8, HL=9, PRF=10, HL=11, LIN=12, SN1=13, HL, LIN, SN1=16
    assert out == [
        record(**TRANSIT, segment=13, item_id="012345678905", item_id_qualifier="UP",
               item_ids=ids("UP", "012345678905"), qty=12, uom="EA"),
        record(**TRANSIT, segment=16, item_id="10012345678902", item_id_qualifier="UK",
               item_ids=ids("UK", "10012345678902"), qty=2, uom="CA"),
    ]


def test_846_and_856_in_one_group_keep_their_controls():
    out = parse(render([tx("846", 1, BODY_846), tx("856", 2, BODY_856)]))
    assert codes(out) == []
    assert [(r["set"], r["control"]) for r in out] == [("846", CONTROL_1)] * 3 + [
        ("856", CONTROL_2)
    ] * 2
    # the 856 starts right after the 846's SE: ST at 3 + 10 segments
    assert [r["segment"] for r in out] == [7, 8, 10, 13 + 10, 16 + 10]


def test_856_without_dtm_011_ships_at_bsn_date_time():
    body = [s for s in BODY_856 if s[0] != "DTM"]
    out = parse(render([tx("856", 1, body)], gs_code="SH"))
    assert {r["shipped_at"] for r in out} == {"2026-11-30T10:15:00"}


def test_846_optional_available_line_absent():
    body = [s for s in BODY_846 if s[:2] != ["QTY", "33"]]
    out = parse(render([tx("846", 1, body)]))
    assert [(r["item_id"], r["qty_type"], r["qty"]) for r in out] == [
        ("012345678905", "on_hand", 40), ("10012345678902", "on_hand", 3)]


def test_records_are_identical_with_and_without_newlines():
    a = parse(render([tx("846", 1, BODY_846)]))
    b = parse(render([tx("846", 1, BODY_846)], newline=False))
    assert a == b
