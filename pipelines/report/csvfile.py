"""The detail as CSV: one header row, one row per discrepancy, the columns of DETAIL_COLUMNS.

Written as UTF-8 with a byte order mark (`utf-8-sig`): Excel opens a BOM-less file in the
machine's legacy code page, which garbles non-ASCII item descriptions; Python's csv, DuckDB and
polars read the BOM as UTF-8 (polars and DuckDB skip it; in Python open with `utf-8-sig`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from invrecon.pipelines.report.common import DETAIL_COLUMNS, neutralize
from invrecon.pipelines.report.data import ReportData

__all__ = ["CSV_ENCODING", "write_csv"]

CSV_ENCODING = "utf-8-sig"


def _csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "text":
        return neutralize(str(value)) or ""
    if kind == "date":
        return value.isoformat()
    if kind == "int":
        return str(int(value))
    return repr(round(float(value), 6))


def write_csv(data: ReportData, out: io.TextIOBase) -> None:
    """Write the detail as CSV to `out` (open it with encoding=CSV_ENCODING, newline="")."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow([name for name, _, _ in DETAIL_COLUMNS])
    for row in data.detail:
        w.writerow([_csv_value(row.get(name), kind) for name, _, kind in DETAIL_COLUMNS])
