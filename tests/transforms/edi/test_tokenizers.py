"""Unit tests of the pure pieces: decoding, ISA / UNA, envelopes, value parsers."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi import EdiError
from invrecon.transforms.edi.decode import decode_chunks
from invrecon.transforms.edi.edifact import DEFAULT_DELIMITERS, split_segment
from invrecon.transforms.edi.values import edifact_timestamp, parse_number, same_control, x12_timestamp
from invrecon.transforms.edi.x12 import X12Delimiters, read_isa, split_element
from tests.transforms.edi.helpers import codes, errors, parse, records, render, tx
from tests.transforms.edi.test_generator_feeds import BODY_846

ISA = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *260301*0600*^*"
       "00501*000000001*0*P*>~")


def test_decode_bom_utf8_and_latin1_fallback():
    assert list(decode_chunks([b"\xef\xbb\xbfAB", b"\xe2\x80", b"\xa6"])) == ["AB", "\u2026"]
    # not UTF-8 from the second block on: latin-1 for the rest, the first block kept
    assert "".join(decode_chunks([b"A\xc3\x96", b"\x85Z"])) == "A\u00d6\x85Z"


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


def test_split_element_repetition_before_component():
    assert split_element("A:B^C", X12Delimiters("*", ":", "~", "^")) == [["A", "B"], ["C"]]


def test_cr_terminator_crlf_and_indentation():
    data = render([tx("846", 1, BODY_846)], segment="\r", newline=True)
    data = data.replace(b"\n", b"\n   ")
    assert codes(parse(data)) == [] and len(records(parse(data))) == 3


def test_junk_between_interchanges_and_second_interchange_still_loads():
    one = render([tx("846", 1, BODY_846)])
    out = parse(one + b"garbage here\n" + one.replace(b"*P*>~", b"*P*:~"))
    assert codes(out) == ["junk"] and len(records(out)) == 6


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


def test_edifact_release_character_and_components():
    assert split_segment("FTX+A?+B+x?:y:z", DEFAULT_DELIMITERS) == [["FTX"], ["A+B"], ["x:y", "z"]]


def test_edifact_unt_count_and_duplicate_reference():
    msg = "UNH+1+DESADV:D:96A:UN'BGM+351+D'LIN+1++123:EN'QTY+12:4'UNT+5+1'"
    data = f"UNB+UNOA:3+A+B+260101:1200+9'{msg}{msg}UNZ+2+9'".encode()
    out = parse(data)
    assert codes(out) == ["duplicate_control"] and len(records(out)) == 2
    out = parse(data.replace(b"UNT+5+1'", b"UNT+7+1'", 1))
    assert codes(out) == ["count_mismatch", "duplicate_control"] and len(records(out)) == 1


@pytest.mark.parametrize("text, value", [("12", 12), ("-3.50", -3.5), (".25", 0.25),
                                         ("1,5", 1.5), ("007", 7), ("+4", 4), ("2.0", 2)])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "1020A", "1e5", "1.2.3", "-", "nan"])
def test_parse_number_rejects(text):
    with pytest.raises(EdiError):
        parse_number(text)


def test_timestamps():
    assert x12_timestamp("20240131", "1405") == "2024-01-31T14:05:00"
    assert x12_timestamp("20240731", "140530", "CT") == "2024-07-31T14:05:30-05:00"
    assert x12_timestamp("240131", "14053012", "UT") == "2024-01-31T14:05:30+00:00"
    assert x12_timestamp("20240131", "", "13") == "2024-01-31T00:00:00-12:00"
    assert edifact_timestamp("202401311405", "203") == "2024-01-31T14:05:00"
    for bad in (("2024013", ""), ("20241301", ""), ("20240131", "2561"), ("20240131", "", "XX")):
        with pytest.raises(EdiError):
            x12_timestamp(*bad)


def test_same_control_is_numeric():
    assert same_control("000003438", "3438") and not same_control("3438", "3439")
    assert same_control("XXX", "XXX") and not same_control("0001~", "1")
