"""`parse_edi` / `parse_edi_stream` / `parse_text`: the standard sniffed from the first characters, any chunking, never a raise."""

from __future__ import annotations

import io

import pytest

from invrecon.transforms.edi import parse_edi_stream
from invrecon.transforms.edi.parse import parse_text, sniff
from tests.transforms.edi.helpers import BODY_846, FIXTURES, parse, render, tx

ISA = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *260301*0600*^*"
       "00501*000000001*0*P*>~")


@pytest.mark.parametrize("head, standard", [
    (ISA, "x12"), ("\r\n  " + ISA, "x12"), ("XSA" + ISA[3:], "x12"),  # a damaged tag: still X12 (bad_isa)
    ("UNA:+.? 'UNB+UNOA:3", "edifact"), ("UNB+UNOA:3+A", "edifact"),
    ("ISAA", None), ("hello", None), ("", None),
])
def test_sniff(head, standard):
    assert sniff(head) == standard


def test_parse_text_takes_decoded_chunks_of_any_size():
    text = render([tx("846", 1, BODY_846)]).decode()
    whole = list(parse_text([text], file="f.edi"))
    assert len(whole) == 3 and list(parse_text(list(text), file="f.edi")) == whole


def test_what_is_not_edi_is_one_error():
    assert parse(b"") == [{"kind": "error", "file": "f.edi", "code": "not_edi", "message": "empty file",
                           "control": {"interchange": None, "group": None, "transaction": None}, "segment": None}]
    assert parse(b"  hello")[0]["message"] == "not an X12 or EDIFACT interchange: starts 'hello'"


def test_parse_edi_stream_refuses_a_chunk_size_of_zero():
    with pytest.raises(ValueError, match="`chunk_size` must be > 0"):
        parse_edi_stream(io.BytesIO(b""), file="f", chunk_size=0)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.edi")))
def test_fixture_parses_identically_streamed_in_tiny_chunks(name):
    data = (FIXTURES / name).read_bytes()
    whole = parse(data, file=name)
    streamed = list(parse_edi_stream(io.BytesIO(data), file=name, chunk_size=7))
    assert streamed == whole
