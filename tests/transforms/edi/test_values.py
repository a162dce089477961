"""The values X12 and EDIFACT share: numbers, dates and times, control numbers, the qualifier table and item-id choice."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi import EdiError
from invrecon.transforms.edi.values import (
    DEFAULT_QUALIFIERS,
    MAX_SEGMENTS_PER_TRANSACTION,
    choose_item_id,
    edifact_timestamp,
    parse_number,
    same_control,
    too_large,
    x12_timestamp,
)
from tests.transforms.edi.helpers import FIXTURES, ids, parse


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


def test_too_large_names_the_unit_and_the_limit():
    assert too_large("ST '0001'", 3, 9) == (
        f"ST '0001' at segment 3 has 9 segments; transactions of more than {MAX_SEGMENTS_PER_TRANSACTION} segments "
        "(MAX_SEGMENTS_PER_TRANSACTION) are not read")


def test_the_qualifier_table_knows_the_case_code_the_parser_emits():
    """UC is the implied qualifier of W01/W07/W12/W19's bare case code: a GTIN, like UP and UK."""
    assert {q: DEFAULT_QUALIFIERS[q] for q in ("UC", "UP", "UK", "EN", "VN", "SK")} == {
        "UC": "gtin", "UP": "gtin", "UK": "gtin", "EN": "gtin", "VN": "vendor_part", "SK": "sku"}


def test_choose_item_id_prefers_the_most_global_id_then_file_order():
    assert choose_item_id(ids("VN", "V-1", "UP", "0123", "UK", "1012"), DEFAULT_QUALIFIERS) == ("0123", "UP")
    assert choose_item_id(ids("ZZ", "?", "VN", "V-1"), DEFAULT_QUALIFIERS) == ("V-1", "VN")  # unknown comes last
    assert choose_item_id(ids("ZZ", "?"), DEFAULT_QUALIFIERS) == ("?", "ZZ")  # one id: no choice
    assert choose_item_id([], DEFAULT_QUALIFIERS) == (None, None)
    assert choose_item_id(ids("UC", "0360", "VN", "V-1"), {**DEFAULT_QUALIFIERS, "UC": "marketplace_sku"}) == ("V-1", "VN")


def test_qualifier_override_changes_the_chosen_item_id():
    out = parse((FIXTURES / "940-reservations.edi").read_bytes(), qualifiers={"UC": "marketplace_sku"})
    assert [(r["item_id"], r["item_id_qualifier"]) for r in out] == [
        ("V-100", "VN"), ("10036000291459", "UK")]
