"""Error codes: a closed, documented set; `Problem` is what becomes an error dict."""

from __future__ import annotations

import dataclasses

import pytest

from invrecon.transforms.edi import CODES, EdiError
from invrecon.transforms.edi.errors import Problem


def test_the_codes_are_closed_and_each_says_what_it_means():
    assert sorted(CODES) == sorted([
        "not_edi", "bad_isa", "bad_una", "bad_header", "bad_control_number", "control_mismatch", "count_mismatch",
        "missing_trailer", "missing_header", "duplicate_control", "unexpected_segment", "junk", "unsupported_set",
        "no_records", "bad_quantity", "bad_uom", "bad_date", "missing_item_id", "transaction_too_large"])
    assert all(text and text[0].islower() for text in CODES.values())


def test_a_problem_is_a_frozen_value_with_optional_position():
    p = Problem("junk", "text that is not an interchange")
    assert (p.segment, p.tag, p.element, p.value, p.control) == (None, None, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.code = "bad_isa"
    assert dataclasses.replace(p, segment=4).segment == 4 and issubclass(EdiError, Exception)
