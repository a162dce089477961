"""EDI reader: the parser's records of small X12 846 / 856 / 947 files canonicalized by `canonical_from_edi`."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl

from invrecon.transforms.edi import parse_edi
from invrecon.transforms.readers.common import FileResult, SourceSpec
from invrecon.transforms.readers.edi import canonical_from_edi, read_edi
from tests.transforms.edi.helpers import FIXTURES, render, tx

SPEC = SourceSpec(name="tpl", kind="edi", system="wms", timezone="America/New_York")
UTC = dt.UTC


def _canonical(data: bytes, crosswalks, spec: SourceSpec = SPEC, file: str = "f.edi") -> FileResult:
    return canonical_from_edi(list(parse_edi(data, file=file)), file, spec, crosswalks)


def _rows(table, *columns) -> list[tuple]:
    return pl.from_arrow(table).select(*columns).rows() if table is not None else []


def _quarantine(result: FileResult) -> list[tuple]:
    return pl.from_arrow(result.quarantine).select("locator", "reason_code", "reason").rows()


def _count(result: FileResult) -> int:
    return sum(t.num_rows for t in (result.positions, result.in_transit, result.movements, result.quarantine) if t is not None)


def _947(*lines: list[str]) -> bytes:
    return render([tx("947", 1, [["W15", "20261130", "ADJ-9"], ["N1", "WH", "East", "91", "E1"], *lines])], gs_code="AW")


def test_846_positions_in_eaches_with_the_parsers_errors_and_unmapped_locations_quarantined(tiny_crosswalks):
    result = _canonical((FIXTURES / "846-sdq-uit-timezone.edi").read_bytes(), tiny_crosswalks)
    tx_id = "(ISA 000000101 / GS 101 / ST 1001)"
    as_of = dt.datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # 04:30 ES (eastern standard), DTM*007
    assert _rows(result.positions, "sku", "location", "on_hand", "available", "uom_source", "as_of", "system", "locator") == [
        ("SKU1", "DC01", 120, None, "EA", as_of, "wms", f"segment 9 {tx_id}"),
        ("SKU1", "DC01", None, 1200, "CA", as_of, "wms", f"segment 10 {tx_id}"),  # 100 cases of 12 (the SKU's case pack)
        ("SKU2", "S0001", 10, None, "EA", as_of, "wms", f"segment 13 {tx_id}"),
    ]
    assert _quarantine(result) == [
        (f"segment 14 {tx_id}", "bad_quantity", "QTY02 quantity 'x1' is not a number at segment 14"),  # the parser's own code
        (f"segment 13 {tx_id}", "unmapped_location", "field c_location: wms location S002 is not in the location crosswalk"),
    ]
    assert result.read == 5 == _count(result)


def test_856_in_transit_keeps_its_shipment_and_dates_and_an_unknown_item_is_quarantined(tiny_crosswalks):
    result = _canonical((FIXTURES / "856-bom-crlf-indent-no-hl-parents.edi").read_bytes(), tiny_crosswalks)
    assert _rows(result.in_transit, "shipment_id", "sku", "from_location", "to_location", "qty", "shipped_at", "expected_at") == [
        ("ASN-77", "SKU1", "V01", "S0009", 24, dt.datetime(2026, 3, 2, 12, tzinfo=UTC), dt.datetime(2026, 3, 5, 5, tzinfo=UTC)),
    ]
    assert _quarantine(result) == [
        ("segment 20 (ISA 000000103 / GS 103 / ST 0001)", "unmapped_sku", "item 4006381333931: none of the record's item ids is in the sku crosswalk"),
    ]
    assert result.read == 2 == _count(result)


def test_947_adjustments_signed_in_eaches_unknown_qualifier_and_bad_quantity_quarantined(tiny_crosswalks):
    data = _947(
        ["W19", "AV", "5", "EA", "", "ZZ", "X-1"],  # ZZ: no id type; nothing else to map it by
        ["W19", "AV", "1.5", "EA", "", "VN", "V-100"],  # not whole eaches
        ["W19", "AV", "2", "CA", "", "VN", "V-100"],  # two cases of 12, shrinkage: -24
        ["W19", "AV", "3", "EA", "", "BP", "B-7", "VN", "V-100"],  # B-7 unknown, V-100 known: the first the crosswalk knows wins
    )
    result = _canonical(data, tiny_crosswalks)
    tx_id = "(ISA 000000007 / GS 7 / ST 0001)"
    when = dt.datetime(2026, 11, 30, 5, tzinfo=UTC)
    assert _rows(result.movements, "event_id", "event_type", "sku", "location", "qty", "reserved_delta", "occurred_at", "reference") == [
        (f"f.edi#segment 8 {tx_id}", "adjustment", "SKU1", "DC01", -24, 0, when, "ADJ-9"),
        (f"f.edi#segment 9 {tx_id}", "adjustment", "SKU1", "DC01", -3, 0, when, "ADJ-9"),
    ]
    assert _quarantine(result) == [
        (f"segment 6 {tx_id}", "unmapped_sku", "item X-1: none of the record's item ids is in the sku crosswalk"),
        (f"segment 7 {tx_id}", "bad_quantity", "field qty: -1.5 EA is -1.5 eaches, not a whole number"),
    ]
    assert result.read == 4 == _count(result)


def test_a_sources_qualifiers_override_the_table_and_the_947_qualifier_uc_is_a_gtin(tiny_crosswalks):
    data = _947(["W19", "AV", "5", "EA", "", "ZZ", "SKU-2"], ["W19", "AA", "1", "EA", "036000291452"])
    default = _canonical(data, tiny_crosswalks)
    assert _rows(default.movements, "sku", "qty") == [("SKU1", 1)]  # the bare W19 id: a U.P.C. case code (UC), a GTIN
    assert [code for _, code, _ in _quarantine(default)] == ["unmapped_sku"]
    spec = dataclasses.replace(SPEC, qualifiers=(("ZZ", "sku"),))
    assert _rows(_canonical(data, tiny_crosswalks, spec).movements, "sku", "qty") == [("SKU2", -5), ("SKU1", 1)]


def test_movements_dated_past_the_cut_off_and_skew_are_future_events(tiny_crosswalks):
    data = _947(["W19", "AA", "1", "EA", "", "VN", "V-100"])
    spec = dataclasses.replace(SPEC, cutoff=dt.datetime(2026, 11, 28, 5, tzinfo=UTC), future_event_skew_hours=24)
    result = _canonical(data, tiny_crosswalks, spec)
    assert _rows(result.movements, "sku") == [] and _quarantine(result) == [(
        "segment 6 (ISA 000000007 / GS 7 / ST 0001)", "future_event",
        "field date: 2026-11-30T00:00:00 is more than 24 h after the run's cut-off 2026-11-28T05:00:00.000Z",
    )]


def test_read_edi_of_a_missing_file_is_one_unreadable_file_record(tmp_path, tiny_crosswalks):
    uri = str(tmp_path / "none.edi")
    (result,) = read_edi(uri, SPEC, tiny_crosswalks)
    assert result.read == 1 and [(loc, code) for loc, code, _ in _quarantine(result)] == [("file", "unreadable_file")]


def test_a_file_that_is_not_edi_is_one_not_edi_record_located_at_the_file(tmp_path, tiny_crosswalks):
    path = tmp_path / "notes.edi"
    path.write_text("hello world\nnot an interchange\n")
    results = list(read_edi(str(path), SPEC, tiny_crosswalks))
    assert sum(r.read for r in results) == 1
    assert [(loc, code) for r in results for loc, code, _ in _quarantine(r)] == [("file", "not_edi")]
