"""Hostile and careless inputs (issue 12): one bad value rejects its row, never its file; every
split of kept from rejected is total; hostile shapes are refused early, with a reason.

Each bad input is generated here from the committed world's good files (`tests/transforms/hostile.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

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


# -- dates: beyond what anything downstream holds, or too far in the future -----------------------

CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.timezone.utc)  # 2026-11-30 23:59:59.999 Chicago


def test_an_edi_date_that_converts_to_year_10000_is_a_bad_timestamp(crosswalks):
    """BIA 9999-12-31 23:30 Chicago is 10000-01-01 UTC: pandas (and so Great Expectations) cannot hold it."""
    text = EDI_846.read_text().replace("BIA*00*MM*INV2026113000*20261130*2000~", "BIA*00*MM*INV2026113000*99991231*2330~")
    kept, q, read = _edi(text, crosswalks)
    assert kept.height == 0 and set(codes(q).values()) == {"bad_timestamp"} and q.height == read == 39
    assert "9999-12-31T23:30:00 is outside the supported range" in q["reason"][0]


@pytest.mark.parametrize("as_of", ["9999-12-31T23:00:00", "1066-10-14T09:00:00"])
def test_an_erp_as_of_outside_the_supported_range_is_a_bad_timestamp(tmp_path, crosswalks, as_of):
    kept, q, read = collect(read_tabular(_erp_with(tmp_path, {3: _erp_row(3, SNAPSHOT_TS=as_of)}), ERP, crosswalks))
    assert kept.height == read - 1 and codes(q) == {"line 4": "bad_timestamp"}


def _events_at(tmp_path, when: dict[int, str]) -> str:
    lines = good_event_lines()[:20]
    for i, ts in when.items():
        ev = json.loads(lines[i])
        ev["occurred_at"] = ts
        lines[i] = json.dumps(ev)
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_events_beyond_the_skew_past_the_cutoff_are_future_events(tmp_path, crosswalks):
    path = _events_at(tmp_path, {1: "9999-12-31T00:00:00Z", 2: "2026-12-03T05:00:00Z", 3: "2026-12-03T07:00:00Z"})
    spec = dataclasses.replace(EVENTS, cutoff=CUTOFF, future_event_skew_hours=48)
    kept, q, read = collect(read_events(path, spec, crosswalks))
    assert read == 20 and codes(q) == {"line 2": "future_event", "line 4": "future_event"}  # line 3: 47 h after
    assert q.sort("locator")["reason"][0] == (
        "field occurred_at: 9999-12-31T00:00:00Z is more than 48 h after the run's cut-off 2026-12-01T05:59:59.999Z"
    )
    kept, q, _ = collect(read_events(path, dataclasses.replace(spec, future_event_skew_hours=1), crosswalks))
    assert codes(q) == {"line 2": "future_event", "line 3": "future_event", "line 4": "future_event"}


def test_without_a_cutoff_a_year_9999_event_is_still_a_bad_timestamp(tmp_path, crosswalks):
    kept, q, read = collect(read_events(_events_at(tmp_path, {1: "9999-12-31T00:00:00Z"}), EVENTS, crosswalks))
    assert read == 20 and codes(q) == {"line 2": "bad_timestamp"}


def test_edi_movements_beyond_the_skew_are_future_events(crosswalks):
    text = (WORLD.parents[1] / "tests/edi_fixtures/947-adjustments.edi").read_text()
    text = text.replace("*91*E1~", "*92*WH-01~").replace("UK*10036000291459~", "UK*10070000000000~")
    records = list(parse_edi(text.encode(), file="x.edi"))
    spec = dataclasses.replace(EDI, cutoff=dt.datetime(2026, 3, 7, 6, tzinfo=dt.timezone.utc))
    kept, q, _ = collect([canonical_from_edi(records, "x.edi", spec, crosswalks)])
    assert kept.height == 1 and "future_event" not in set(q["reason_code"])
    future = list(parse_edi(text.replace("W15*20260306*", "W15*21990101*").encode(), file="x.edi"))
    kept, q, _ = collect([canonical_from_edi(future, "x.edi", spec, crosswalks)])
    assert kept.height == 0 and codes(q)["segment 8 (ISA 000000107 / GS 107 / ST 0001)"] == "future_event"


# -- JSON nested deeper than any parser's stack ---------------------------------------------------

DEEP = 200_000


@pytest.mark.parametrize("deep", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP])
def test_a_json_line_nested_200k_deep_rejects_its_line_only(tmp_path, crosswalks, deep):
    lines = COMMERCE_JSONL.read_text().splitlines()[:10]
    lines[4] = deep
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 10 and kept.height == 9 and codes(q) == {"line 5": "malformed_row"}
    assert "nested too deeply" in q["reason"][0]

    events = good_event_lines()[:10]
    events[4] = deep
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(events) + "\n")
    kept, q, read = collect(read_events(str(path), EVENTS, crosswalks))
    assert read == 10 and kept.height == 9 and codes(q) == {"line 5": "malformed_event"}
    assert "nested too deeply" in q["reason"][0]
