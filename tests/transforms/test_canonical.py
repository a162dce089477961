"""Identifier, unit and timestamp normalization (transforms/canonical.py)."""

from __future__ import annotations

import pathlib

import polars as pl
import pytest

from invrecon.transforms.canonical import (
    CrosswalkError,
    apply_uom,
    gtin14_or_none,
    load_crosswalks,
    load_items,
    map_locations,
    map_skus,
    parse_timestamps,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("036000291452", "00036000291452"),  # UPC-12
        ("0036000291452", "00036000291452"),  # EAN-13 of the same item
        ("00036000291452", "00036000291452"),  # GTIN-14
        ("10036000291459", "10036000291459"),  # case GTIN-14, indicator 1
        ("96385074", "00000096385074"),  # GTIN-8
        (" 036000291452 ", "00036000291452"),
    ],
)
def test_gtin_forms_normalize_to_one_gtin14(value, expected):
    assert gtin14_or_none(value) == expected


@pytest.mark.parametrize("value", ["036000291453", "3600029145", "03600029145X", "", "123456789012345"])
def test_invalid_gtins_are_rejected(value):
    assert gtin14_or_none(value) is None


def _crosswalks(tmp_path: pathlib.Path, sku_rows: str, loc_rows: str = "erp,P1,DC1,dc\nstore,0001,S1,store\n"):
    (tmp_path / "sku.csv").write_text("id_type,id_value,sku,units_per_id\n" + sku_rows)
    (tmp_path / "loc.csv").write_text("system,source_location,location,location_type\n" + loc_rows)
    return load_crosswalks(str(tmp_path / "sku.csv"), str(tmp_path / "loc.csv"))


def test_upc12_and_gtin14_hit_the_same_crosswalk_row(tmp_path):
    cw = _crosswalks(tmp_path, "gtin,036000291452,A,1\ngtin,10036000291459,A,12\n")
    df = pl.DataFrame({"id": ["036000291452", "00036000291452", "10036000291459"], "t": ["gtin"] * 3, "_file": "f", "_locator": ["l1", "l2", "l3"], "_raw": ""})
    mapped, rejected = map_skus(df, cw, id_col="id", type_col="t")
    assert mapped["sku"].to_list() == ["A", "A", "A"]
    assert mapped["units_per_id"].to_list() == [1, 1, 12]
    assert rejected == []


def test_bad_check_digit_and_unmapped_are_quarantined_not_guessed(tmp_path):
    cw = _crosswalks(tmp_path, "gtin,036000291452,A,1\n")
    df = pl.DataFrame({"id": ["036000291453", "012345678905"], "t": ["gtin", "gtin"], "_file": "f", "_locator": ["line 2", "line 3"], "_raw": ["r1", "r2"]})
    mapped, rejected = map_skus(df, cw, id_col="id", type_col="t")
    assert mapped.height == 0
    q = pl.concat(rejected).sort("locator")
    assert q.select("locator", "reason_code").rows() == [("line 2", "bad_check_digit"), ("line 3", "unmapped_sku")]
    assert "036000291453" in q["reason"][0]


def test_crosswalk_id_mapped_to_two_skus_names_both_lines(tmp_path):
    with pytest.raises(CrosswalkError) as e:
        _crosswalks(tmp_path, "gtin,036000291452,A,1\nstore_item,77,B,1\ngtin,00036000291452,B,1\n")
    msg = str(e.value)
    assert "sku.csv" in msg and "line 2" in msg and "line 4" in msg and "-> A" in msg and "-> B" in msg


def test_crosswalk_rejects_bad_gtin_and_unknown_id_type(tmp_path):
    with pytest.raises(CrosswalkError, match="line 2: field id_value"):
        _crosswalks(tmp_path, "gtin,036000291453,A,1\n")
    with pytest.raises(CrosswalkError, match="line 2: field id_type"):
        _crosswalks(tmp_path, "upc,036000291452,A,1\n")


def test_location_mapped_twice_is_an_error(tmp_path):
    with pytest.raises(CrosswalkError, match="mapped twice: line 2 -> DC1, line 3 -> DC2"):
        _crosswalks(tmp_path, "sku,A,A,1\n", "erp,P1,DC1,dc\nerp,P1,DC2,dc\n")


def test_locations_map_per_system(tmp_path):
    cw = _crosswalks(tmp_path, "sku,A,A,1\n")
    df = pl.DataFrame({"loc": ["P1", "0001", "P1"], "sys": ["erp", "store", "store"], "_file": "f", "_locator": ["a", "b", "c"], "_raw": ""})
    kept, rejected = map_locations(df, cw, col="loc", system_col="sys", out="location")
    assert kept["location"].to_list() == ["DC1", "S1"]
    assert pl.concat(rejected)["reason_code"].to_list() == ["unmapped_location"]


@pytest.mark.parametrize(
    "uom, units_per_id, expected",
    [("EA", 1, 1), ("ea", 1, 1), ("PCE", 1, 1), ("CA", 1, 12), ("CS", 12, 12), ("EA", 12, 12), ("DZ", 1, 12), ("", 1, 1)],
)
def test_units_convert_to_eaches(tmp_path, uom, units_per_id, expected):
    cw = _crosswalks(tmp_path, "gtin,036000291452,A,1\ngtin,10036000291459,A,12\n")
    df = pl.DataFrame({"sku": ["A"], "units_per_id": [units_per_id], "u": [uom], "_file": "f", "_locator": "l", "_raw": ""})
    out, rejected = apply_uom(df, cw, uom_col="u")
    assert out["units_per_uom"].to_list() == [expected] and rejected == []


def test_unknown_unit_is_quarantined(tmp_path):
    cw = _crosswalks(tmp_path, "sku,A,A,1\n")
    df = pl.DataFrame({"sku": ["A"], "units_per_id": [1], "u": ["FT"], "_file": "f", "_locator": "line 9", "_raw": ""})
    out, rejected = apply_uom(df, cw, uom_col="u")
    assert out.height == 0 and rejected[0]["reason_code"].to_list() == ["unknown_uom"]


def test_timestamps_without_offset_are_local_and_with_offset_are_kept():
    df = pl.DataFrame({"t": ["2026-11-30T20:00:00", "2026-11-30T20:00:00-06:00", "2026-12-01T02:00:00Z", "2026-11-30 20:00", "nonsense"]})
    out = df.select(parse_timestamps(pl.col("t"), timezone="America/Chicago").alias("u"))["u"].to_list()
    assert len({str(v) for v in out[:4]}) == 1 and out[4] is None


def test_items_master_duplicate_sku_names_lines(tmp_path):
    (tmp_path / "items.csv").write_text("sku,unit_cost\nA,1.5\nA,2\n")
    with pytest.raises(CrosswalkError, match="lines 2 and 3"):
        load_items(str(tmp_path / "items.csv"))
    (tmp_path / "items.csv").write_text("sku,unit_cost\nA,abc\n")
    with pytest.raises(CrosswalkError, match="line 2: field unit_cost"):
        load_items(str(tmp_path / "items.csv"))


def test_timestamps_of_every_shape_in_one_column_keep_their_rows():
    """The common shape parses in one pass, the rest format by format: each value stays in its row."""
    values = ["2026-11-30T20:00:00+00:00", None, "2026-11-30T14:00:00-06:00", "2026-11-30 20:00", "x", "2026-11-30T20:00:00.5Z",
              " 2026-11-30T21:00:00+01:00 ", "2026-11-30"]
    df = pl.DataFrame({"t": values}, schema={"t": pl.String})
    got = df.select(parse_timestamps(pl.col("t"), timezone="UTC").dt.epoch("ms").alias("u"))["u"].to_list()
    at8 = 1_796_068_800_000  # 2026-11-30T20:00:00Z
    assert got == [at8, None, at8, at8, None, at8 + 500, at8, at8 - 20 * 3_600_000]


@pytest.mark.parametrize(
    "text, factor, eaches, problem",
    [
        ("12.5", 12, 150, None),  # 12.5 DZ
        ("1.1", 10, 11, None),  # a binary float says 11.000000000000002
        (" 7 ", 1, 7, None),
        ("12.0", 1, 12, None),
        ("2e3", 1, 2000, None),
        ("-3", 1, -3, None),
        ("0.5" + "0" * 200, 2, 1, None),
        ("12.3", 12, None, "is 147.6 eaches, not a whole number"),
        ("1e-30", 1, None, "is 1E-30 eaches, not a whole number"),  # not 0
        ("0.1" + "0" * 120 + "1", 10, None, "is not a whole number of eaches"),
        ("1e308", 1, None, "is out of range (more than 1,000,000,000,000 eaches)"),
        ("inf", 1, None, "is out of range (more than 1,000,000,000,000 eaches)"),
        ("999999999999", 2, None, "is out of range (more than 1,000,000,000,000 eaches)"),  # in range as written, not in eaches
        ("4611686018427387904", 1, None, "is out of range (more than 1,000,000,000,000 eaches)"),
        ("12x", 1, None, "is not a number"),
        ("NaN", 1, None, "is not a number"),
        ("1_000", 1, None, "is not a number"),
        ("", 1, None, "is not a number"),
        (None, 1, None, "is not a number"),
    ],
)
def test_quantities_convert_to_whole_eaches_exactly(text, factor, eaches, problem):
    from invrecon.transforms.canonical import to_eaches

    df = pl.DataFrame({"q": [text, "5"], "f": [factor, 1]}, schema={"q": pl.String, "f": pl.Int64})
    got = df.select(to_eaches(pl.col("q"), pl.col("f")).alias("e")).unnest("e").rows()
    assert got == [(eaches, problem), (5, None)]
