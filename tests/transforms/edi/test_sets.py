"""Exact records for hand-written fixtures (tests/edi_fixtures), one per transaction set.

Each fixture exercises a different envelope too (delimiters, BOM, CRLF, indentation, UNA), so
these double as tokenizer tests. Segment numbers are counted by hand in the comments.
"""

from __future__ import annotations

import pytest

from tests.transforms.edi.helpers import FIXTURES, ids, parse, record


def load(name: str) -> list[dict]:
    return parse((FIXTURES / name).read_bytes(), file=name)


def x12(interchange: int, **fields: object) -> dict:
    ctl = {"interchange": f"{interchange:09d}", "group": str(interchange), "transaction": "0001"}
    return {"standard": "x12", "control": ctl, **fields}


def expect(name: str, common: dict, *lines: dict) -> list[dict]:
    return [record(file=name, **common, **line) for line in lines]


def test_846_uit_sdq_breakdown_and_time_zone():
    name = "846-sdq-uit-timezone.edi"
    common = x12(101, kind="position", set="846", as_of="2026-03-01T04:30:00-05:00")
    common["control"]["transaction"] = "1001"
    a = dict(item_id="036000291452", item_id_qualifier="UP",
             item_ids=ids("UP", "036000291452", "VN", "V-100"), location="NDC")
    b = dict(item_id="SKU-2", item_id_qualifier="SK", item_ids=ids("SK", "SKU-2"))
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
    up1 = dict(item_id="036000291452", item_id_qualifier="UP", item_ids=ids("UP", "036000291452"))
    up2 = dict(item_id="012000161155", item_id_qualifier="UP", item_ids=ids("UP", "012000161155"))
    assert load(name) == expect(
        name, common,
        dict(up1, segment=7, qty=8, uom="EA", qty_type="on_hand"),
        dict(up1, segment=8, qty=6, uom="EA", qty_type="available"),
        dict(up2, segment=11, qty=0, uom="EA", qty_type="on_hand"),
    )


def test_856_bom_crlf_indent_inferred_hl_parents_and_order_ship_to():
    name = "856-bom-crlf-indent-no-hl-parents.edi"
    common = x12(103, kind="in_transit", set="856", qty_type="shipped", shipment_id="ASN-77",
                 reference="ASN-77", from_location="VP1", shipped_at="2026-03-02T12:00:00+00:00",
                 expected_at="2026-03-05T00:00:00")
    assert load(name) == expect(
        name, common,
        # order HL 2 names its own ship-to (cross-dock store): the item under it goes there
        dict(segment=15, item_id="036000291452", item_id_qualifier="UP",
             item_ids=ids("UP", "036000291452", "VN", "V-100"), qty=24, uom="EA",
             to_location="S009"),
        dict(segment=20, item_id="4006381333931", item_id_qualifier="EN",
             item_ids=ids("EN", "4006381333931"), qty=6, uom="CA", to_location="RDC"),
    )


def test_940_reservations():
    name = "940-reservations.edi"
    common = x12(104, kind="movement", set="940", event_type="reservation", qty_type="ordered",
                 location="E1", to_location="C77", reference="ORD-5",
                 occurred_at="2026-03-03T09:00:00")
    assert load(name) == expect(
        name, common,
        dict(segment=8, item_id="036000291452", item_id_qualifier="UC",
             item_ids=ids("UC", "036000291452", "VN", "V-100"), qty=10, uom="EA"),
        dict(segment=10, item_id="10036000291459", item_id_qualifier="UK",
             item_ids=ids("UK", "10036000291459"), qty=2, uom="CA"),
    )


def test_944_receipts_reference_the_asn():
    name = "944-receipts.edi"
    common = x12(105, kind="movement", set="944", event_type="receipt", qty_type="received",
                 location="E1", from_location="VP1", shipment_id="ASN-77", reference="ASN-77",
                 occurred_at="2026-03-04T10:15:00")
    assert load(name) == expect(
        name, common,
        dict(segment=7, item_id="036000291452", item_id_qualifier="UC",
             item_ids=ids("UC", "036000291452", "VN", "V-100"), qty=24, uom="EA"),
        dict(segment=8, item_id="4006381333931", item_id_qualifier="EN",
             item_ids=ids("EN", "4006381333931"), qty=6, uom="CA"),
    )


def test_945_shipments_use_units_shipped_and_g62_time():
    name = "945-shipments.edi"
    common = x12(106, kind="movement", set="945", event_type="shipment", qty_type="shipped",
                 location="E1", to_location="C77", shipment_id="SHP-3", reference="SHP-3",
                 occurred_at="2026-03-05T16:30:00")
    assert load(name) == expect(
        name, common,
        dict(segment=9, item_id="036000291452", item_id_qualifier="UC",
             item_ids=ids("UC", "036000291452", "VN", "V-100"), qty=9, uom="EA"),
    )


def test_947_signed_adjustments_by_reason_code():
    name = "947-adjustments.edi"
    common = x12(107, kind="movement", set="947", event_type="adjustment", qty_type="adjusted",
                 location="E1", reference="ADJ-1", occurred_at="2026-03-06T00:00:00")
    assert load(name) == expect(
        name, common,
        # AV damaged in transit: written unsigned, can only lower stock
        dict(segment=6, item_id="036000291452", item_id_qualifier="UC",
             item_ids=ids("UC", "036000291452"), qty=-5, uom="EA"),
        # 56 book adjustment increase
        dict(segment=7, item_id="V-100", item_id_qualifier="VN", item_ids=ids("VN", "V-100"),
             qty=3, uom="EA"),
        # AA physical count: the written sign stands
        dict(segment=8, item_id="10036000291459", item_id_qualifier="UK",
             item_ids=ids("UK", "10036000291459"), qty=-2, uom="CA"),
    )


def test_180_returns_in_transit_inbound_backslash_terminator():
    name = "180-returns.edi"
    common = x12(108, kind="in_transit", set="180", event_type="return", qty_type="returned",
                 shipment_id="RMA-4", reference="RMA-4", shipped_at="2026-03-07T08:00:00",
                 from_location="S009", to_location="RDC")
    assert load(name) == expect(
        name, common,
        dict(segment=7, item_id="036000291452", item_id_qualifier="UP",
             item_ids=ids("UP", "036000291452"), qty=3, uom="EA"),
        dict(segment=8, item_id="SKU-2", item_id_qualifier="SK",
             item_ids=ids("SK", "SKU-2", "VN", "V-200"), qty=1, uom="EA"),
    )


def edifact(interchange: str, message: str, **fields: object) -> dict:
    ctl = {"interchange": interchange, "group": None, "transaction": message}
    return {"standard": "edifact", "control": ctl, **fields}


def test_invrpt_decimal_comma_release_char_and_loc_after_qty():
    name = "invrpt-una-decimal-comma.edi"
    common = edifact("INV1", "1", kind="position", set="INVRPT", qty_type="on_hand",
                     as_of="2026-03-07T00:00:00")
    assert load(name) == expect(
        name, common,
        dict(segment=10, item_id="4006381333931", item_id_qualifier="EN",
             item_ids=ids("EN", "4006381333931", "SA", "V-100"), qty=12.5, uom="KGM",
             location="DC-N"),
        # no LOC for this line: the NAD+WH party is the stock location
        dict(segment=13, item_id="036000291452", item_id_qualifier="EN",
             item_ids=ids("EN", "036000291452"), qty=40, uom="PCE", location="5412345000013"),
    )


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
                dict(segment=10, item_id="4006381333931", item_id_qualifier="EN",
                     item_ids=ids("EN", "4006381333931"), qty=48, uom="PCE"),
                # PIA B77:NB is a batch number, not an item id
                dict(segment=13, item_id="036000291452", item_id_qualifier="EN",
                     item_ids=ids("EN", "036000291452", "SA", "V-9"), qty=5)),
        # UNA|^.\ ! : the released ^ stays in the id
        *expect(name, two, dict(segment=24, item_id="SKU^7", item_id_qualifier="SA",
                                item_ids=ids("SA", "SKU^7"), qty=7)),
    ]


def test_slsrpt_sales_and_negative_sales_as_returns_per_store():
    name = "slsrpt-stores.edi"
    common = edifact("S1", "1", kind="movement", set="SLSRPT", qty_type="sold", uom="PCE",
                     occurred_at="2026-03-10T00:00:00")
    en = dict(item_id="4006381333931", item_id_qualifier="EN", item_ids=ids("EN", "4006381333931"))
    up = dict(item_id="036000291452", item_id_qualifier="EN", item_ids=ids("EN", "036000291452"))
    assert load(name) == expect(
        name, common,
        dict(en, segment=9, qty=3, event_type="sale", location="STORE-1"),
        dict(up, segment=11, qty=1, event_type="return", location="STORE-1"),
        dict(en, segment=14, qty=2, event_type="sale", location="STORE-2"),
    )


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.edi")))
def test_fixture_parses_identically_streamed_in_tiny_chunks(name):
    import io

    from invrecon.transforms.edi import parse_edi_stream

    data = (FIXTURES / name).read_bytes()
    whole = parse(data, file=name)
    streamed = list(parse_edi_stream(io.BytesIO(data), file=name, chunk_size=7))
    assert streamed == whole


def test_qualifier_override_changes_the_chosen_item_id():
    out = parse((FIXTURES / "940-reservations.edi").read_bytes(), qualifiers={"UC": "marketplace_sku"})
    assert [(r["item_id"], r["item_id_qualifier"]) for r in out] == [
        ("V-100", "VN"), ("10036000291459", "UK")]
