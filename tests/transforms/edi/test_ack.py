"""997 acknowledgements: one per group, AK2/AK5 per transaction, AK3/AK4 for bad elements."""

from __future__ import annotations

import datetime as dt

from invrecon.transforms.edi import build_997
from tests.transforms.edi.helpers import BODY_846, FIXTURES, render, tx

NOW = dt.datetime(2026, 3, 1, 12, 30)


def ak(text: str) -> list[str]:
    return [s.strip() for s in text.split("~") if s.strip()[:2] == "AK"]


def test_accepted_with_errors_names_segment_and_element():
    (ack,) = build_997((FIXTURES / "846-sdq-uit-timezone.edi").read_bytes(), file="f", now=NOW)
    assert ack.startswith("ISA*00*          *00*          *ZZ*RETAILER       *ZZ*WMS3PL         "
                          "*260301*1230*^*00501*000000101*0*P*:~\n")
    # the bad QTY is segment 12 of the transaction (ST = 1); QTY02 holds 'x1'
    assert ak(ack) == ["AK1*IB*101*005010", "AK2*846*1001", "AK3*QTY*12**8", "AK4*2**6*x1",
                       "AK5*E*5", "AK9*E*1*1*1"]


def test_rejected_and_unsupported_transactions_partially_accept_the_group():
    good = tx("846", 1, BODY_846)
    broken = tx("846", 2, BODY_846)
    broken[-1][1] = "99"  # SE01 wrong
    order = tx("850", 3, [["BEG", "00", "SA", "PO1", "", "20260301"]])
    (ack,) = build_997(render([good, broken, order]), file="f", now=NOW)
    assert ak(ack) == ["AK1*IB*7*005010", "AK2*846*0001", "AK5*A", "AK2*846*0002", "AK5*R*4",
                       "AK2*850*0003", "AK5*R*1", "AK9*P*3*3*1"]


def test_group_trailer_errors_reach_ak9():
    data = render([tx("846", 1, BODY_846)]).replace(b"GE*1*7~", b"GE*2*8~")
    (ack,) = build_997(data, file="f", now=NOW)
    assert ak(ack)[-1] == "AK9*E*2*1*1*4*5"


def test_one_997_per_group_and_none_for_edifact_or_junk():
    data = render([tx("846", 1, BODY_846)])
    assert len(build_997(data + data, file="f", now=NOW)) == 2
    assert build_997((FIXTURES / "slsrpt-stores.edi").read_bytes(), file="f") == []
    assert build_997(b"\x00junk", file="f") == []


def test_one_pass_gives_the_records_and_the_997s():
    """A collector passed to parse_edi leaves the records as they are and gets what build_997 builds."""
    from invrecon.transforms.edi import AckCollector, parse_edi

    now = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
    for path in sorted(FIXTURES.glob("*.edi")):
        data = path.read_bytes()
        acks = AckCollector(now=now)
        records = list(parse_edi(data, file=path.name, acks=acks))
        assert records == list(parse_edi(data, file=path.name)), path.name
        assert acks.texts == build_997(data, file=path.name, now=now), path.name
        assert bool(acks.texts) == data.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"ISA"), path.name
