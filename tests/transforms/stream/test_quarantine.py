"""Quarantine rows of the stream's rejects: the QUARANTINE columns plus `_date`, the UTC event date."""

from __future__ import annotations

import polars as pl

from invrecon.schemas import QUARANTINE
from invrecon.transforms.stream.quarantine import (
    QUARANTINE_COLUMNS,
    empty_quarantine,
    quarantine_frame,
    quarantine_row,
    utc_date,
    utc_date_expr,
)
from tests.transforms.stream.helpers import us


def test_the_partition_is_the_utc_date_of_the_event_or_unknown():
    assert utc_date(us("23:59")) == "2026-11-30" and utc_date(0) == "1970-01-01"
    days = pl.select(utc_date_expr(pl.Series([us("00:00"), None], dtype=pl.Int64))).to_series().to_list()
    assert days == ["2026-11-30", "unknown"]


def test_quarantine_row_names_source_line_and_reason():
    row = quarantine_row(source="stock_events", file="f.jsonl", locator="line 3", code="late_event", reason="r", raw="{}",
                         run_id="t", when=us("10:00"))
    assert tuple(row) == QUARANTINE_COLUMNS
    assert row == {"run_id": "t", "source": "stock_events", "file": "f.jsonl", "locator": "line 3", "reason_code": "late_event",
                   "reason": "r", "raw": "{}", "_date": "2026-11-30"}
    assert quarantine_row(source="s", file=None, locator="message 1", code="c", reason="r", raw=None)["_date"] == "unknown"


def test_quarantine_frame_of_rejected_movement_rows():
    """Columns of QUARANTINE and `_date`, in that order; the code a literal or a column."""
    rejected = pl.DataFrame({"file": ["f", "f"], "locator": ["line 1", "line 2"], "_raw": ["{a}", "{b}"],
                             "_ts": [us("10:00"), None], "why": ["one", "two"], "code": ["x", "y"]})
    out = quarantine_frame(rejected, code="duplicate_event", reason=pl.col("why"), run_id="t", source="s", when=pl.col("_ts"))
    assert tuple(out.columns) == QUARANTINE_COLUMNS == (*QUARANTINE.names, "_date")
    assert out.rows() == [("t", "s", "f", "line 1", "duplicate_event", "one", "{a}", "2026-11-30"),
                          ("t", "s", "f", "line 2", "duplicate_event", "two", "{b}", "unknown")]
    by_column = quarantine_frame(rejected, code=pl.col("code"), reason=pl.col("why"), run_id="t", source="s")
    assert by_column["reason_code"].to_list() == ["x", "y"] and by_column["_date"].to_list() == ["unknown", "unknown"]


def test_empty_quarantine_concatenates_with_real_rows():
    empty = empty_quarantine()
    assert tuple(empty.columns) == QUARANTINE_COLUMNS and empty.height == 0
    rows = quarantine_frame(pl.DataFrame({"file": ["f"], "locator": ["line 1"], "_raw": ["{}"]}), code="c", reason=pl.lit("r"),
                            run_id="t", source="s")
    assert pl.concat([empty, rows], how="vertical_relaxed").height == 1
