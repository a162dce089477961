"""Property / fuzz tests of the whole parser: nothing at all raised out of `parse_edi` or `build_997`.

(`read_isa` raising nothing but `EdiError` is fuzzed in test_x12.py.)
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invrecon.transforms.edi import build_997
from tests.transforms.edi.helpers import BODY_846, BODY_856, FIXTURES, parse, records, render, tx

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
VALID = [p.read_bytes() for p in sorted(FIXTURES.glob("*.edi"))]
# Delimiters a partner could pick: punctuation and control characters, never data characters.
DELIMS = sorted(set(string.punctuation + "\x1c\x1d\x1e\x1f|…Ö¬") - set("-.:/ #&'(),"))


def _check(out: list[dict]) -> None:
    for r in out:
        assert r["kind"] in ("position", "in_transit", "movement", "error")


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data):
    _check(parse(data))
    build_997(data, file="f")


@SETTINGS
@given(st.text(alphabet="ISAUNB*~+:'?^>|\n\r 0123456789GSTEZ", max_size=400))
def test_edi_looking_text_never_raises(text):
    _check(parse(text.encode()))
    _check(parse(("ISA" + text).encode()))
    _check(parse(("UNA:+.? '" + text).encode()))


@SETTINGS
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_files_never_raise(data, draw):
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 6))):
        op = draw.draw(st.sampled_from(["flip", "drop", "dup", "cut"]))
        i = draw.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = draw.draw(st.integers(0, 255))
        elif op == "drop" and buf:
            del buf[i : i + draw.draw(st.integers(1, 20))]
        elif op == "dup":
            buf[i:i] = buf[i : i + draw.draw(st.integers(1, 40))]
        else:
            del buf[i:]
    _check(parse(bytes(buf)))
    build_997(bytes(buf), file="f")


@SETTINGS
@given(st.lists(st.sampled_from(DELIMS), min_size=4, max_size=4, unique=True), st.booleans())
def test_any_choice_of_delimiters_round_trips(delims, newline):
    element, component, segment, repetition = delims
    txs = [tx("846", 1, BODY_846), tx("856", 2, BODY_856)]
    want = records(parse(render(txs)))
    got = parse(render(txs, element=element, component=component, segment=segment,
                       repetition=repetition, newline=newline))
    assert got == want
