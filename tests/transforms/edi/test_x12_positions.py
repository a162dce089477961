"""846 / 852 -> position records: exact records for the generator's feed and the hand-written fixtures."""

from __future__ import annotations

from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12_positions import map_positions
from tests.transforms.edi.helpers import BODY_846, CONTROL_1, expect, item, load, parse, record, render, transactions, tx, x12

POS = dict(kind="position", file="f.edi", standard="x12", set="846", control=CONTROL_1,
           location="DC01", as_of="2026-11-30T20:00:00")


def test_846_positions_exact():
    out = parse(render([tx("846", 1, BODY_846)]))
    # ISA=1, GS=2, ST=3, BIA=4, N1=5, LIN=6, QTY=7, QTY=8, LIN=9, QTY=10
    assert out == [
        record(**POS, segment=7, **item("UP", "012345678905"), qty=40, uom="EA", qty_type="on_hand"),
        record(**POS, segment=8, **item("UP", "012345678905"), qty=35, uom="EA", qty_type="available"),
        record(**POS, segment=10, **item("UK", "10012345678902"), qty=3, uom="CA", qty_type="on_hand"),
    ]


def test_846_optional_available_line_absent():
    body = [s for s in BODY_846 if s[:2] != ["QTY", "33"]]
    out = parse(render([tx("846", 1, body)]))
    assert [(r["item_id"], r["qty_type"], r["qty"]) for r in out] == [
        ("012345678905", "on_hand", 40), ("10012345678902", "on_hand", 3)]


def test_map_positions_yields_records_and_leaves_problems_in_the_list():
    """The mapper alone: a QTY with no LIN before it is no position; a bad one is a problem."""
    body = [BODY_846[0], BODY_846[1], ["QTY", "17", "9", "EA"], BODY_846[2], ["QTY", "17", "x", "EA"], BODY_846[3]]
    (t,) = transactions(render([tx("846", 1, body)]))
    problems: list = []
    out = list(map_positions(t, MapContext(file="f.edi"), problems))
    assert [(r["segment"], r["qty"], r["location"]) for r in out] == [(9, 40, "DC01")]
    assert [(p.code, p.segment) for p in problems] == [("bad_quantity", 8)]


def test_846_uit_sdq_breakdown_and_time_zone():
    name = "846-sdq-uit-timezone.edi"
    common = x12(101, kind="position", set="846", as_of="2026-03-01T04:30:00-05:00")
    common["control"]["transaction"] = "1001"
    a = dict(item("UP", "036000291452", "VN", "V-100"), location="NDC")
    b = item("SK", "SKU-2")
    out = load(name)
    # LIN=7 UIT=8 QTY17=9 QTY33=10 LIN=11 QTY17=12 SDQ=13 QTY(bad)=14
    assert out[:-1] == expect(
        name, common,
        dict(a, segment=9, qty=120, uom="EA", qty_type="on_hand"),  # unit from the item's UIT
        dict(a, segment=10, qty=100, uom="CA", qty_type="available"),  # QTY03 composite CA:12
        dict(b, segment=13, qty=10, uom="EA", qty_type="on_hand", location="S001"),
        dict(b, segment=13, qty=20, uom="EA", qty_type="on_hand", location="S002"),
    )
    assert out[-1] == {"kind": "error", "file": name, "code": "bad_quantity",
                       "message": "QTY02 quantity 'x1' is not a number at segment 14",
                       "control": common["control"], "segment": 14}


def test_852_qty_on_hand_and_za_available():
    name = "852-pipe-newline.edi"
    common = x12(102, kind="position", set="852", location="S012", as_of="2026-02-28T00:00:00")
    up1 = item("UP", "036000291452")
    up2 = item("UP", "012000161155")
    assert load(name) == expect(
        name, common,
        dict(up1, segment=7, qty=8, uom="EA", qty_type="on_hand"),
        dict(up1, segment=8, qty=6, uom="EA", qty_type="available"),
        dict(up2, segment=11, qty=0, uom="EA", qty_type="on_hand"),
    )
