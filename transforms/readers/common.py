"""What every reader shares: `SourceSpec` in, `FileResult` out, and the rows of a file or batch that fails whole."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator

import polars as pl
import pyarrow as pa

from invrecon.schemas import QUARANTINE
from invrecon.transforms.quarantine import quarantine_rows
from invrecon.transforms.textfiles import BATCH_ROWS, Unreadable

__all__ = [
    "FileResult",
    "SourceSpec",
    "all_rejected",
    "file_rejected",
    "guarded",
    "quarantine_table",
    "to_arrow",
    "unreadable",
]

# The readers' logger keeps the name it had when they were one module (`transforms/sources.py`):
# log filters name it.
log = logging.getLogger("invrecon.sources")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """What a reader needs to know of a configured source; picklable, no config objects."""

    name: str
    kind: str
    system: str | None
    format: str | None = None
    columns: tuple[tuple[str, str], ...] = ()  # source column -> canonical field
    sku_id_type: str = "sku"
    location_system: str | None = None
    qualifiers: tuple[tuple[str, str], ...] = ()
    timezone: str = "UTC"
    # The run's cut-off (UTC), and how far past it an event may be dated: a later one is a
    # `future_event` (config `quality.future_event_skew_hours`). No cut-off (the stream): no check.
    cutoff: dt.datetime | None = None
    future_event_skew_hours: float = 48.0


@dataclasses.dataclass(kw_only=True)
class FileResult:
    """Canonical output of one file (or one batch of it)."""

    positions: pa.Table | None = None
    movements: pa.Table | None = None
    in_transit: pa.Table | None = None
    quarantine: pa.Table | None = None
    read: int = 0


def to_arrow(df: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast a polars frame with the schema's columns to that exact Arrow schema."""
    table = df.select([f.name for f in schema]).to_arrow()
    return table.cast(schema)


def quarantine_table(frames: list[pl.DataFrame], source: str) -> pa.Table:
    """The QUARANTINE table of a source's quarantine frames (`quarantine_rows`); run_id is left empty."""
    frames = [f for f in frames if f.height]
    if not frames:
        return QUARANTINE.empty_table()
    q = pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.lit("").alias("run_id"), pl.lit(source).alias("source")
    )
    return to_arrow(q, QUARANTINE)


def all_rejected(spec: SourceSpec, rows: pl.DataFrame, code: str, reason: pl.Expr | str) -> FileResult:
    """Every row of `rows` (`_file`, `_locator`, `_raw`) quarantined with one code; each was read."""
    return FileResult(quarantine=quarantine_table([quarantine_rows(rows, code, reason)], spec.name), read=rows.height)


def guarded(spec: SourceSpec, uri: str, locators: Callable[[], list[str] | pl.Series] | pl.Series,
            canonicalize: Callable[[], FileResult]) -> FileResult:
    """`canonicalize()`; should it fail in a way nobody foresaw, one `reader_error` row per
    record of the batch (`locators`, or a function giving them: made only then), so the run
    goes on and conservation still counts records."""
    try:
        return canonicalize()
    except Exception as e:  # noqa: BLE001 - a bug must cost its batch, not the file or the run
        locators = locators() if callable(locators) else locators
        log.warning("%s: %s: %d records quarantined as reader_error", spec.name, uri, len(locators), exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        reason = f"{uri}: {type(e).__name__}: {first} (a reader bug: the batch of {len(locators)} records is quarantined)"
        rows = pl.DataFrame({"_locator": pl.Series(list(locators), dtype=pl.String)}).select(
            pl.lit(uri).alias("_file"), "_locator", pl.lit(None, dtype=pl.String).alias("_raw")
        )
        return all_rejected(spec, rows, "reader_error", reason)


def file_rejected(spec: SourceSpec, uri: str, code: str, message: str, raw: str | None = None) -> FileResult:
    """One quarantine row naming the whole file (locator `file`), counted as one record read."""
    row = pl.DataFrame(
        {"_file": [uri], "_locator": ["file"], "_raw": [raw]},
        schema={"_file": pl.String, "_locator": pl.String, "_raw": pl.String},
    )
    return all_rejected(spec, row, code, message)


def unreadable(spec: SourceSpec, uri: str, e: Unreadable) -> Iterator[FileResult]:
    """`unreadable_file` rows: one per record the file holds (`read` counts them), else one."""
    reason = f"{uri}: file unreadable: {e.reason}"
    if e.numbers is None or not len(e.numbers):
        yield file_rejected(spec, uri, "unreadable_file", reason)
        return
    for at in range(0, len(e.numbers), BATCH_ROWS):
        part = pl.Series("_n", e.numbers[at:at + BATCH_ROWS], dtype=pl.Int64)
        rows = pl.DataFrame(part).select(
            pl.lit(uri).alias("_file"), pl.format(f"{e.word} {{}}", "_n").alias("_locator"), pl.lit(None, dtype=pl.String).alias("_raw")
        )
        yield all_rejected(spec, rows, "unreadable_file", reason)
