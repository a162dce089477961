"""Reading an X12 transaction's lines: id pairs, parties, and `Lines`, where a bad value is a problem on its line."""

from __future__ import annotations

from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12_lines import SMALL_INTS, Lines, case_code, first_party, pairs, party
from tests.transforms.edi.helpers import BODY_846, CONTROL_1, ids, render, transactions, tx


def _lines(kind: str = "position") -> tuple[Lines, list]:
    (t,) = transactions(render([tx("846", 1, BODY_846)]))
    problems: list = []
    return Lines(t, MapContext(file="f.edi"), kind, problems), problems


def test_pairs_keep_both_non_empty_from_an_element_on():
    seg = ["LIN", "1", "UP", "0123", "VN", "", "SK", "A1", "IN"]
    assert pairs(seg, 2) == ids("UP", "0123", "SK", "A1")
    assert pairs(seg, 2, 4) == ids("UP", "0123") and pairs(seg, 20) == []


def test_case_code_is_the_implied_uc_qualifier():
    assert case_code(["W01", "10", "EA", "036000291452"], 3) == ids("UC", "036000291452")
    assert case_code(["W01", "10", "EA", ""], 3) == [] and case_code(["W01"], 3) == []


def test_party_is_the_coded_id_else_the_name_and_first_party_the_first_named():
    assert party(["N1", "WH", "Main DC", "92", "DC01"]) == "DC01" and party(["N1", "ST", "Store 7"]) == "Store 7"
    assert party(["N1", "ST"]) is None
    assert first_party({"SF": None, "SH": "DC02", "ST": "S1"}, ("SF", "SH", "ST")) == "DC02"
    assert first_party({}, ("SF",)) is None


def test_small_ints_are_the_canonical_spellings_only():
    assert SMALL_INTS["12"] == 12 and "007" not in SMALL_INTS and "1000" not in SMALL_INTS


def test_lines_start_from_the_transaction_base_record():
    out, _ = _lines()
    assert (out.base["kind"], out.base["set"], out.base["control"], out.base["standard"]) == ("position", "846", CONTROL_1, "x12")
    assert out.pos(0) == 4  # ST is segment 3


def test_a_bad_quantity_or_unit_is_a_problem_on_its_line():
    out, problems = _lines()
    assert out.line(out.base, ["QTY", "17", "4.5", "EA"], 3, 2, 3)["qty"] == 4.5
    assert out.line(out.base, ["QTY", "17", "x1", "EA"], 3, 2, 3) is None
    assert out.line(out.base, ["QTY", "17", "4", "EACH"], 3, 2, 3) is None
    assert out.qty(["QTY", "17", ""], 2, 3, required=False) is None
    assert [(p.code, p.segment, p.tag, p.element, p.value) for p in problems] == [
        ("bad_quantity", 7, "QTY", 2, "x1"), ("bad_uom", 7, "QTY", 3, "EACH")]
    assert problems[0].message == "QTY02 quantity 'x1' is not a number at segment 7"


def test_a_unit_is_the_first_component_and_may_be_missing():
    out, problems = _lines()
    assert out.uom(["QTY", "17", "4", "CA>12"], 3, 3) == (True, "CA")
    assert out.uom(["QTY", "17", "4"], 3, 3) == (True, None) and problems == []


def test_dates_read_dtm_and_a_bad_one_is_a_problem():
    out, problems = _lines()
    assert out.dtm(["DTM", "011", "20261130", "0900", "UT"], 0) == "2026-11-30T09:00:00+00:00"
    assert out.timestamp("", "", "", 0, "BIA") is None and problems == []
    assert out.timestamp("20261340", "", "", 0, "BIA") is None and [p.code for p in problems] == ["bad_date"]
    assert out.group_time() == "2026-11-30T21:00:00"  # GS04 / GS05 of the envelope


def test_emit_chooses_the_item_id_and_a_line_without_ids_is_missing_item_id():
    out, problems = _lines()
    rec = out.line(out.base, ["QTY", "17", "4", "EA"], 3, 2, 3)
    out.emit(rec, 3, ids("VN", "A1", "UP", "0123"))
    out.emit(dict(rec), 3, [])
    assert [(r["item_id"], r["item_id_qualifier"], r["item_ids"]) for r in out.records] == [("0123", "UP", ids("VN", "A1", "UP", "0123"))]
    assert [(p.code, p.message) for p in problems] == [
        ("missing_item_id", "QTY at segment 7 has a quantity but its line has no item id")]
    assert list(out.done()) == out.records


def test_a_transaction_with_nothing_to_say_is_noted_as_no_records():
    out, problems = _lines()
    assert list(out.done()) == []
    assert [(p.code, p.segment, p.tag) for p in problems] == [("no_records", 3, "ST")]


def test_held_lines_are_emitted_with_the_fields_known_at_the_end():
    """hold / add_party / done: the lines wait for the parties and dates the header gives later."""
    out, problems = _lines("movement")
    assert [(i, seg[0]) for i, seg in out.segments()][:2] == [(0, "BIA"), (1, "N1")]
    out.add_party(["N1", "WH", "Main DC", "92", "DC01"])
    out.add_party(["N1", "WH", "Other", "92", "DC02"])  # the first per entity code counts
    rec = out.line(out.base, ["W01", "4", "EA"], 3, 1, 2)
    out.hold(rec, 3, ids("UC", "0360"))
    out.hold(dict(rec), 3, [])
    got = list(out.done(location=out.party(("SF", "WH")), occurred_at="2026-11-30T00:00:00"))
    assert [(r["location"], r["occurred_at"], r["item_id"], r["qty"]) for r in got] == [("DC01", "2026-11-30T00:00:00", "0360", 4)]
    assert [p.code for p in problems] == ["missing_item_id"]
    assert Lines(out.tx, out.ctx, "movement", [], qty_type="ordered").base["qty_type"] == "ordered"
