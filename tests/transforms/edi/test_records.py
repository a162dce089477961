"""The parse-edi record and error dicts (DESIGN.md §3) and the helpers that build them."""

from __future__ import annotations

from invrecon.transforms.edi import RECORD_FIELDS, RECORD_KINDS
from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import (
    ERROR_FIELDS,
    MapContext,
    base_record,
    error_dict,
    map_unit,
    no_records_problem,
    unsupported_problem,
)
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS
from tests.transforms.edi.helpers import CONTROL_1, record


def test_base_record_has_every_field_in_order_and_its_own_control():
    control = dict(CONTROL_1)
    rec = base_record("movement", file="f.edi", standard="x12", set_id="940", control=control)
    assert tuple(rec) == RECORD_FIELDS and type(rec) is dict
    assert rec == record(kind="movement", file="f.edi", standard="x12", set="940", control=CONTROL_1)
    control["transaction"] = "0002"
    assert rec["control"] == CONTROL_1  # a copy: the walker's dict may change
    assert "movement" in RECORD_KINDS


def test_error_dict_of_a_problem_with_and_without_control():
    p = Problem("bad_uom", "QTY03 unit 'EACH' ...", 7, "QTY", 3, "EACH")
    assert error_dict(p, file="f.edi", control=CONTROL_1) == {
        "kind": "error", "file": "f.edi", "code": "bad_uom", "message": "QTY03 unit 'EACH' ...", "control": CONTROL_1, "segment": 7}
    got = error_dict(p, file="f.edi", control=None)
    assert tuple(got) == ERROR_FIELDS and got["control"] == {"interchange": None, "group": None, "transaction": None}


def test_informational_problems_name_the_unit():
    assert unsupported_problem("transaction set '850'", 3, "ST") == Problem(
        "unsupported_set", "transaction set '850' (ST at segment 3) is not mapped by invrecon", 3, "ST")
    assert no_records_problem("message type 'INVRPT'", 2, "UNH") == Problem(
        "no_records", "message type 'INVRPT' (UNH at segment 2) has no line this pipeline extracts", 2, "UNH")


def test_map_unit_never_skips_a_unit_silently():
    ctx = MapContext(file="f.edi")
    assert ctx.qualifiers == DEFAULT_QUALIFIERS
    assert map_unit(None, object(), ctx, kind="k", start=2, tag="UNH") == ([], [unsupported_problem("k", 2, "UNH")])
    assert map_unit(lambda unit, c: ([], []), object(), ctx, kind="k", start=2, tag="UNH") == ([], [no_records_problem("k", 2, "UNH")])
    found = ([{"qty": 1}], [Problem("bad_date", "m", 4)])
    assert map_unit(lambda unit, c: found, object(), ctx, kind="k", start=2, tag="UNH") == found
