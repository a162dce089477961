"""Tabular reader: rows of a file that repeat an earlier one in every column."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.readers.tabular import Repeats, read_tabular


def test_repeats_are_found_across_batches_and_name_the_first_occurrence():
    """`Repeats` (sorted hashes, binary search) keeps each row's first occurrence, batch sizes aside."""
    import numpy as np

    rng = np.random.default_rng(3)
    for _ in range(30):
        rows, repeats, line, kept, first_of = rng.integers(0, 40, 300), Repeats(word="line"), 0, [], {}
        while line < len(rows):
            part = rows[line:line + int(rng.integers(1, 50))]
            df = pl.DataFrame({"_raw": pl.Series(part).cast(pl.String), "_line": np.arange(line + 1, line + 1 + len(part)),
                               "_file": "f", "_locator": [f"line {n}" for n in range(line + 1, line + 1 + len(part))]})
            rejected: list[pl.DataFrame] = []
            kept += repeats.reject(df, rejected)["_line"].to_list()
            for k, v in enumerate(part, start=line + 1):
                first_of.setdefault(v, k)
            for q in rejected:
                for loc, reason in q.select("locator", "reason").iter_rows():
                    n = int(loc.split()[1])
                    assert reason == f"line {n} repeats line {first_of[rows[n - 1]]} in every column; counted once"
            line += len(part)
        assert kept == sorted(first_of.values())


# -- read_tabular on a tiny world ---------------------------------------------------------------------

COLUMNS = (("MATNR", "sku"), ("WERKS", "location"), ("LABST", "on_hand"), ("MEINS", "uom_source"), ("TS", "as_of"))
TS = "2026-11-30T20:00:00"
# (row, reason code of the row or None when it is kept)
ROWS = [
    (("M1", "P1", "10", "EA", TS), None),
    (("M2", "P2", "abc", "EA", TS), "bad_quantity"),
    (("M1", "P2", "2", "CA", TS), None),  # a case of SKU1: its case pack, 12
    (("M9", "P1", "1", "EA", TS), "unmapped_sku"),
    (("M2", "P1", "1.5", "EA", TS), "bad_quantity"),
    (("M2", "P1", "3", "EA", "yesterday"), "bad_timestamp"),
    (("M2", "P9", "3", "EA", TS), "unmapped_location"),
    (("M2", "P1", "7", "EA", TS), None),
]
# How each format numbers a record: a CSV's header is line 1, JSON Lines start at line 1, Parquet at row 1.
FIRST = {"csv": ("line", 2), "jsonl": ("line", 1), "parquet": ("row", 1)}


def _spec(fmt: str) -> SourceSpec:
    return SourceSpec(name="erp", kind="positions", system="erp", format=fmt, columns=COLUMNS, sku_id_type="erp_material")


def _write(df: pl.DataFrame, path) -> str:
    {".csv": df.write_csv, ".parquet": df.write_parquet, ".jsonl": df.write_ndjson}[path.suffix](path)
    return str(path)


def _frame(rows) -> pl.DataFrame:
    return pl.DataFrame([r for r, _ in rows], schema=[c for c, _ in COLUMNS], orient="row")


def _read(uri: str, spec: SourceSpec, crosswalks) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    results = list(read_tabular(uri, spec, crosswalks))
    positions = [pl.from_arrow(r.positions) for r in results if r.positions is not None]
    q = [pl.from_arrow(r.quarantine) for r in results if r.quarantine is not None]
    return pl.concat(positions) if positions else pl.DataFrame(), pl.concat(q), sum(r.read for r in results)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_bad_value_rejects_its_row_with_its_code_and_locator_and_the_count_is_conserved(tmp_path, tiny_crosswalks, fmt):
    uri = _write(_frame(ROWS), tmp_path / f"erp.{fmt}")
    positions, q, read = _read(uri, _spec(fmt), tiny_crosswalks)
    word, first = FIRST[fmt]
    locator = {k: f"{word} {first + k}" for k in range(len(ROWS))}
    assert read == len(ROWS) == positions.height + q.height
    assert positions.select("sku", "location", "on_hand", "locator").rows() == [
        ("SKU1", "DC01", 10, locator[0]), ("SKU1", "S0001", 24, locator[2]), ("SKU2", "DC01", 7, locator[7])]
    assert positions["as_of"].to_list() == [dt.datetime(2026, 11, 30, 20, tzinfo=dt.UTC)] * 3
    assert set(positions["system"]) == set(positions["source"]) | {"erp"} == {"erp"}
    want = {locator[k]: code for k, (_, code) in enumerate(ROWS) if code}
    assert dict(q.select("locator", "reason_code").iter_rows()) == want
    assert set(q["file"]) == {uri} and set(q["source"]) == {"erp"}
    assert dict(q.select("locator", "reason").iter_rows()) == {
        locator[1]: "field LABST (on_hand): abc is not a number",
        locator[3]: "field MATNR (sku): erp_material M9 is not in the sku crosswalk",
        locator[4]: "field LABST (on_hand): 1.5 EA is 1.5 eaches, not a whole number",
        locator[5]: "field TS (as_of): yesterday is not an ISO 8601 timestamp",
        locator[6]: "field WERKS (location): erp location P9 is not in the location crosswalk",
    }
    assert json.loads(q.filter(pl.col("locator") == locator[1])["raw"].item())["LABST"] == "abc"


def test_an_unreadable_file_is_one_unreadable_file_record(tmp_path, tiny_crosswalks):
    path = tmp_path / "cut.parquet"
    path.write_bytes(b"PAR1 not a parquet file")
    for uri, fmt, why in ((str(path), "parquet", "not a readable Parquet file"), (str(tmp_path / "none.csv"), "csv", "cannot open")):
        positions, q, read = _read(uri, _spec(fmt), tiny_crosswalks)
        assert read == 1 and positions.height == 0
        assert q.select("file", "locator", "reason_code").rows() == [(uri, "file", "unreadable_file")]
        assert q["reason"].item().startswith(f"{uri}: file unreadable: {why}")


def test_a_missing_mapped_column_rejects_every_row_or_the_file_when_it_has_none(tmp_path, tiny_crosswalks):
    reason = "mapped column(s) LABST missing from the file"
    uri = _write(_frame(ROWS[:3]).drop("LABST"), tmp_path / "erp.csv")
    positions, q, read = _read(uri, _spec("csv"), tiny_crosswalks)
    assert read == 3 and positions.height == 0
    assert q.select("locator", "reason_code", "reason").rows() == [(f"line {n}", "missing_column", f"{uri}: {reason}") for n in (2, 3, 4)]
    uri = _write(_frame(ROWS[:0]).drop("LABST"), tmp_path / "header.csv")
    positions, q, read = _read(uri, _spec("csv"), tiny_crosswalks)
    assert read == 1 and q.select("locator", "reason_code", "reason").rows() == [("file", "missing_column", f"{uri}: {reason}")]


def test_an_availability_feed_needs_its_own_quantity_not_on_hand(tmp_path, tiny_crosswalks):
    spec = SourceSpec(name="feed", kind="availability", system="erp", format="csv",
                      columns=(("MATNR", "sku"), ("WERKS", "location"), ("ATS", "available"), ("TS", "as_of")), sku_id_type="erp_material")
    uri = _write(pl.DataFrame({"MATNR": ["M1", "M2"], "WERKS": ["P1", "P1"], "ATS": ["4", ""], "TS": [TS, TS]}), tmp_path / "feed.csv")
    positions, q, read = _read(uri, spec, tiny_crosswalks)
    assert read == 2 and positions.select("sku", "available", "on_hand").rows() == [("SKU1", 4, None)]
    assert q.select("locator", "reason_code", "reason").rows() == [("line 3", "bad_quantity", "field ATS (available): (empty) is not a number")]
