"""The reject-and-quarantine helpers: every row lands on one side, rows keep their own codes, `raw` is bounded."""

from __future__ import annotations

import doctest

import polars as pl

from invrecon.transforms import quarantine
from invrecon.transforms.quarantine import RAW_MAX_BYTES, quarantine_by_code, reject


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(quarantine).failed == 0


def _rows(n: int, **columns) -> pl.DataFrame:
    return pl.DataFrame({"_file": ["f.csv"] * n, "_locator": [f"line {i + 2}" for i in range(n)], "_raw": [f"r{i}" for i in range(n)], **columns})


def test_reject_quarantines_bad_and_unknown_verdicts_and_keeps_the_rest():
    df = _rows(4, q=[1.0, None, 2.5, 3.0])
    rejected: list[pl.DataFrame] = []
    kept = reject(df, pl.col("q") != pl.col("q").round(0), "bad_quantity", "not whole eaches", rejected)
    assert kept["_locator"].to_list() == ["line 2", "line 5"]
    (q,) = rejected
    assert q.columns == ["file", "locator", "reason_code", "reason", "raw"]
    assert q.rows() == [("f.csv", "line 3", "bad_quantity", "not whole eaches", "r1"), ("f.csv", "line 4", "bad_quantity", "not whole eaches", "r2")]
    assert reject(kept, pl.lit(False), "never", "", rejected).height == 2 and len(rejected) == 1  # nothing rejected, no frame


def test_quarantine_by_code_keeps_each_rows_code_and_reason_and_caps_raw():
    df = _rows(3, _code=["malformed_event", "missing_field", "malformed_event"], _reason=["a", "b", "c"]).with_columns(
        pl.Series("_raw", ["x" * (RAW_MAX_BYTES + 10), None, "{"]))
    frames = quarantine_by_code(df)
    assert [f.select("locator", "reason_code", "reason").rows() for f in frames] == [
        [("line 2", "malformed_event", "a"), ("line 4", "malformed_event", "c")], [("line 3", "missing_field", "b")]]
    assert len(frames[0]["raw"][0].encode()) == RAW_MAX_BYTES and frames[0]["raw"][0].endswith(f"[cut: {RAW_MAX_BYTES + 10} bytes in all]")
