"""Hostile and careless inputs (issue 12): one bad value rejects its row, never its file; every
split of kept from rejected is total; hostile shapes are refused early, with a reason.

Each bad input is generated here from the committed world's good files (`tests/transforms/hostile.py`).
"""

from __future__ import annotations

import pytest

from tests.conftest import WORLD
from tests.transforms.hostile import EDI, EDI_846, codes, collect
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.edi import parse_edi
from invrecon.transforms.sources import canonical_from_edi


@pytest.fixture(scope="module")
def crosswalks():
    return load_crosswalks(str(WORLD / "crosswalk/sku.csv"), str(WORLD / "crosswalk/location.csv"))


def _edi(text: str, crosswalks):
    return collect([canonical_from_edi(list(parse_edi(text.encode(), file="x.edi")), "x.edi", EDI, crosswalks)])


# -- every split is total ------------------------------------------------------------------------


def test_edi_negative_position_is_kept_when_the_file_also_has_a_fractional_quantity(crosswalks):
    """A null in the filter (position: no event type) dropped the negative line from both sides."""
    text = EDI_846.read_text().replace("QTY*17*81*EA", "QTY*17*-5*EA").replace("QTY*17*210*EA", "QTY*17*2.5*EA")
    kept, q, read = _edi(text, crosswalks)
    assert read == 39 and kept.height == 38
    assert list(codes(q).values()) == ["bad_quantity"]
