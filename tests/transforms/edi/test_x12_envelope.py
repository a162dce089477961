"""The X12 envelopes: ISA/GS/ST ... SE/GE/IEA checked, segments numbered, a broken transaction rejected alone."""

from __future__ import annotations

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.x12 import x12_batches
from invrecon.transforms.edi.x12_envelope import GroupEnd, RejectedTransaction, Transaction, walk
from tests.transforms.edi.helpers import BODY_846, BODY_856, CONTROL_1, CONTROL_2, codes, errors, parse, records, render, tx


def _walk(data: bytes) -> list:
    return list(walk(x12_batches([data.decode()])))


def test_walk_numbers_segments_and_hands_out_checked_transactions():
    """ISA = 1, GS = 2, ST = 3: body[i] is segment start + 1 + i; the group closes with a GroupEnd."""
    (tx1, end) = _walk(render([tx("846", 1, BODY_846)]))
    assert isinstance(tx1, Transaction) and isinstance(end, GroupEnd)
    assert (tx1.set_id, tx1.control, tx1.start, tx1.problems) == ("846", CONTROL_1, 3, [])
    assert tx1.body[0].split(tx1.element) == BODY_846[0] and len(tx1.body) == len(BODY_846)
    assert tx1.group is end.group and (end.group.functional_id, end.group.control, end.included) == ("IB", "7", 1)
    assert end.problems == []


def test_walk_rejects_a_transaction_whose_trailer_disagrees():
    bad = tx("846", 1, BODY_846)
    bad[-1][1] = "99"  # SE01 wrong
    (rejected, end) = _walk(render([bad]))
    assert isinstance(rejected, RejectedTransaction) and [p.code for p in rejected.problems] == ["count_mismatch"]
    assert isinstance(end, GroupEnd)


def test_walk_reports_segments_outside_their_envelopes_and_still_maps_the_transaction():
    """Without its GS: the stray segment, the ST and GE outside a group, IEA's count are problems;
    the transaction itself is sound and still comes out."""
    out = _walk(render([tx("846", 1, BODY_846)]).replace(b"GS*", b"XX*", 1))
    assert [(p.code, p.segment) for p in out if isinstance(p, Problem)] == [
        ("unexpected_segment", 2), ("missing_header", 3), ("missing_header", 13), ("count_mismatch", 14)]
    assert [type(e) for e in out].count(Transaction) == 1


def test_846_and_856_in_one_group_keep_their_controls():
    out = parse(render([tx("846", 1, BODY_846), tx("856", 2, BODY_856)]))
    assert codes(out) == []
    assert [(r["set"], r["control"]) for r in out] == [("846", CONTROL_1)] * 3 + [
        ("856", CONTROL_2)
    ] * 2
    # the 856 starts right after the 846's SE: ST at 3 + 10 segments
    assert [r["segment"] for r in out] == [7, 8, 10, 13 + 10, 16 + 10]


def test_missing_trailers_reject_the_open_transaction():
    data = render([tx("846", 1, BODY_846)]).split(b"SE*")[0]
    out = parse(data)
    assert records(out) == []
    assert codes(out) == ["missing_trailer", "missing_trailer", "missing_trailer"]
    assert errors(out)[0]["control"]["transaction"] == "0001"


def test_broken_transaction_does_not_stop_the_next():
    bad = tx("846", 1, BODY_846)
    bad[-1][2] = "0009"
    out = parse(render([bad, tx("846", 2, BODY_846)]))
    assert codes(out) == ["control_mismatch"] and len(records(out)) == 3
    assert {r["control"]["transaction"] for r in records(out)} == {"0002"}


def test_duplicate_st02_is_flagged():
    out = parse(render([tx("846", 1, BODY_846), tx("846", 1, BODY_846)]))
    assert codes(out) == ["duplicate_control"] and len(records(out)) == 6
