"""Build the QUARANTINE rows of the stream's rejects, each with its `_date` partition (the UTC event date).

Every reject keeps its raw payload and a reason naming the file (or bus) and the line (or message),
so that for any input read = archived movements + reported figures + quarantined.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from invrecon.schemas import QUARANTINE
from invrecon.transforms.stream.params import MICROS, RAW

__all__ = ["QUARANTINE_COLUMNS", "empty_quarantine", "quarantine_frame", "quarantine_row", "utc_date", "utc_date_expr"]

# The QUARANTINE columns and `_date`, the partition a row is written under.
QUARANTINE_COLUMNS = (*QUARANTINE.names, "_date")


def utc_date(micros: int) -> str:
    """The UTC date (ISO) of an instant in epoch µs."""
    return dt.datetime.fromtimestamp(micros / MICROS, dt.UTC).date().isoformat()


def utc_date_expr(micros: pl.Expr) -> pl.Expr:
    """The UTC date (ISO) of epoch µs, `unknown` for null: the partition of a quarantine row."""
    return pl.from_epoch(micros, time_unit="us").dt.date().cast(pl.String).fill_null("unknown")


def quarantine_row(*, source: str, file: str | None, locator: str, code: str, reason: str, raw: str | None, run_id: str = "", when: int | None = None) -> dict:
    """One QUARANTINE row as a dict; `_date` (UTC event date or `unknown`) picks its partition."""
    day = dt.datetime.fromtimestamp(when / MICROS, dt.UTC).date().isoformat() if when is not None else "unknown"
    return {"run_id": run_id, "source": source, "file": file, "locator": locator, "reason_code": code, "reason": reason, "raw": raw, "_date": day}


def quarantine_frame(df: pl.DataFrame, *, code: str | pl.Expr, reason: pl.Expr, run_id: str, source: str, when: pl.Expr | None = None) -> pl.DataFrame:
    """QUARANTINE rows (+ `_date`, the partition) of rejected movement rows."""
    # One chunk per column first: polars panics formatting a string column filtered out of several
    # chunks (`assertion failed: i < self.len()`), which is what a bounded replay's bucket is when
    # it was merged from several batches (`in_arrival_order`). Rejects are few: the copy is small.
    return df.rechunk().select(
        pl.lit(run_id).alias("run_id"), pl.lit(source).alias("source"), pl.col("file").cast(pl.String), pl.col("locator"),
        (pl.lit(code) if isinstance(code, str) else code).alias("reason_code"), reason.cast(pl.String).alias("reason"),
        pl.col(RAW).alias("raw"), (utc_date_expr(when) if when is not None else pl.lit("unknown")).alias("_date"),
    )


def empty_quarantine() -> pl.DataFrame:
    """No quarantine rows, with the columns of `quarantine_frame`."""
    return pl.DataFrame(schema={c: pl.String for c in QUARANTINE_COLUMNS})
