"""The X12 tokenizer: ISA by character position, delimiters, segments in batches, junk between interchanges."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invrecon.transforms.edi import EdiError
from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.x12 import (
    IsaHeader,
    X12Delimiters,
    element_at,
    looks_like_isa,
    read_isa,
    split_element,
    x12_batches,
)
from tests.transforms.edi.helpers import BODY_846, codes, parse, records, render, tx

ISA = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *260301*0600*^*"
       "00501*000000001*0*P*>~")


def test_read_isa_fixed_width():
    h = read_isa(ISA)
    assert h.delimiters == X12Delimiters("*", ">", "~", "^")
    assert h.elements[12] == "000000001" and h.consumed == 106 and h.problems == ()


def test_repetition_separator_only_from_00402_and_not_alphanumeric():
    assert read_isa(ISA.replace("00501", "00401")).delimiters.repetition is None
    assert read_isa(ISA.replace("*^*", "*U*")).delimiters.repetition is None


def test_read_isa_counts_separators_when_width_is_wrong():
    h = read_isa(ISA.replace("*A              *", "*A*"))
    assert h.delimiters.segment == "~" and h.elements[5] == "A"
    assert h.problems[0].code == "bad_isa" and "ISA06 is 1 characters, not 15" in h.problems[0].message


@pytest.mark.parametrize("bad", ["ISA*00", "ISAA00", ISA.replace(">~", ">A")])
def test_read_isa_raises_edi_error(bad):
    with pytest.raises(EdiError):
        read_isa(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_read_isa_raises_only_edi_error(tail):
    text = ("ISA*00*          *00*          *ZZ*A" + tail.decode("latin-1"))
    try:
        read_isa(text)
    except EdiError:
        pass


def test_split_element_repetition_before_component():
    assert split_element("A:B^C", X12Delimiters("*", ":", "~", "^")) == [["A", "B"], ["C"]]


def test_element_at_is_empty_past_the_end():
    assert element_at(["N1", "WH"], 1) == "WH" and element_at(["N1", "WH"], 4) == ""


def test_looks_like_isa_whatever_the_tag():
    assert looks_like_isa(ISA) and looks_like_isa("XSA" + ISA[3:])
    assert not looks_like_isa(ISA[:60]) and not looks_like_isa("ISAA" + ISA[4:])


def test_x12_batches_yields_the_header_then_segments_without_layout():
    """Segments come out as text, layout whitespace stripped and empty segments dropped."""
    text = ISA + "\n  GS*IB*A*B*20260301*0600*1*X*005010~\n~ST*846*0001~SE*2*0001~GE*1*1~IEA*1*000000001~"
    out = list(x12_batches([text[:50], text[50:]]))
    assert isinstance(out[0], IsaHeader) and out[0].elements[12] == "000000001"
    assert [s for batch in out[1:] for s in batch] == [
        "GS*IB*A*B*20260301*0600*1*X*005010", "ST*846*0001", "SE*2*0001", "GE*1*1", "IEA*1*000000001"]


def test_x12_batches_reports_junk_once_per_stretch_and_reads_on():
    (junk, header, segments) = list(x12_batches(["garbage here\n" + ISA + "IEA*0*000000001~"]))
    assert isinstance(junk, Problem) and junk.code == "junk" and "garbage here" in junk.message
    assert isinstance(header, IsaHeader) and segments == ["IEA*0*000000001"]


def test_cr_terminator_crlf_and_indentation():
    data = render([tx("846", 1, BODY_846)], segment="\r", newline=True)
    data = data.replace(b"\n", b"\n   ")
    assert codes(parse(data)) == [] and len(records(parse(data))) == 3


def test_records_are_identical_with_and_without_newlines():
    a = parse(render([tx("846", 1, BODY_846)]))
    b = parse(render([tx("846", 1, BODY_846)], newline=False))
    assert a == b


def test_junk_between_interchanges_and_second_interchange_still_loads():
    one = render([tx("846", 1, BODY_846)])
    out = parse(one + b"garbage here\n" + one.replace(b"*P*>~", b"*P*:~"))
    assert codes(out) == ["junk"] and len(records(out)) == 6
