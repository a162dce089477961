"""Hostile and careless inputs (issue 12): one bad value rejects its row, never its file; every
split of kept from rejected is total; hostile shapes are refused early, with a reason.

Each bad input is generated here from the committed world's good files (`tests/transforms/hostile.py`).
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import WORLD
from tests.transforms.hostile import (
    COMMERCE, COMMERCE_JSONL, EDI, EDI_846, ERP, EVENTS, STORE, STORE_PARQUET, codes, collect, erp_lines, good_event_lines,
)
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.edi import parse_edi
from invrecon.transforms.sources import canonical_from_edi, read_events, read_tabular


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


# -- one bad value rejects its row, never its file -----------------------------------------------


def _erp_with(tmp_path, changes: dict[int, str]) -> str:
    """The ERP extract with data row i (1-based) replaced; returns its path."""
    lines = erp_lines()
    for i, row in changes.items():
        lines[i] = row
    path = tmp_path / "erp.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _erp_row(row: int, **fields: str) -> str:
    """Data row `row` of the ERP extract with some of its columns changed."""
    header, lines = erp_lines()[0].split(","), erp_lines()
    values = dict(zip(header, lines[row].split(",")))
    values.update(fields)
    return ",".join(values[h] for h in header)


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e400", "inf", "NaN", "4611686018427387904"])
def test_a_huge_or_non_numeric_erp_quantity_rejects_its_row_only(tmp_path, crosswalks, value):
    kept, q, read = collect(read_tabular(_erp_with(tmp_path, {5: _erp_row(5, LABST=value)}), ERP, crosswalks))
    assert read == 186 and kept.height == 185
    assert codes(q) == {"line 6": "bad_quantity"}
    assert q["reason"][0].startswith(f"field on_hand: {value} is ")


def test_a_huge_jsonl_quantity_rejects_its_row_only(tmp_path, crosswalks):
    lines = COMMERCE_JSONL.read_text().splitlines()[:-1]
    lines[3] = lines[3].replace('"available_to_sell": 300', '"available_to_sell": 1e308')
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 40 and kept.height == 39 and codes(q) == {"line 4": "bad_quantity"}
    assert "out of range" in q["reason"][0]


def test_a_huge_event_quantity_rejects_its_event_only(tmp_path, crosswalks):
    lines = good_event_lines()[:20]
    lines[2] = lines[2].replace('"qty": 2,', '"qty": 1e308,')
    assert '"qty": 1e308' in lines[2]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_events(str(path), EVENTS, crosswalks))
    assert read == 20 and kept.height == 19 and codes(q) == {"line 3": "bad_quantity"}


@pytest.mark.parametrize(
    "dtype, value",
    [(pl.String, "abc"), (pl.Float64, 1e308), (pl.Float64, float("nan")), (pl.Float64, float("inf")), (pl.Int64, 2**62), (pl.Float64, 2.5)],
)
def test_a_bad_parquet_quantity_rejects_its_row_only(tmp_path, crosswalks, dtype, value):
    df = pl.read_parquet(STORE_PARQUET).head(20).with_columns(pl.col("on_hand_qty").cast(dtype))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(value, dtype=dtype)).otherwise(pl.col("on_hand_qty")).alias("on_hand_qty"))
    path = tmp_path / "s.parquet"
    df.write_parquet(path)
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == 20 and kept.height == 19 and codes(q) == {"row 4": "bad_quantity"}


# -- quantities are judged in eaches -------------------------------------------------------------


@pytest.mark.parametrize(
    "qty, uom, eaches",
    [("12.5", "DZ", 150), ("0.25", "DZ", 3), ("1.5", "CS", 36), ("12.50", "EA", None), ("12.3", "DZ", None), ("0.1", "CS", None)],
)
def test_erp_quantities_are_judged_after_conversion_to_eaches(tmp_path, crosswalks, qty, uom, eaches):
    # row 1: material 10000000 (SKU000000, case pack 24)
    path = _erp_with(tmp_path, {1: _erp_row(1, LABST=qty, MEINS=uom, RESERVED="")})
    results = list(read_tabular(path, ERP, crosswalks))
    kept, q, _ = collect(results)
    positions = pl.concat([pl.from_arrow(r.positions) for r in results if r.positions is not None])
    if eaches is None:
        assert codes(q) == {"line 2": "bad_quantity"} and "not a whole number" in q["reason"][0]
    else:
        assert q.height == 0 and positions.filter(pl.col("locator") == "line 2")["on_hand"].to_list() == [eaches]
