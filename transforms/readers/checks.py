"""Reject the quantities and timestamps every reader checks alike: not whole eaches, negative magnitudes, bad or future dates."""

from __future__ import annotations

import datetime as dt

import polars as pl

from invrecon.transforms.canonical import NOT_A_NUMBER, OUT_OF_RANGE, timestamp_problem, to_eaches
from invrecon.transforms.quarantine import reject
from invrecon.transforms.readers.common import SourceSpec

__all__ = ["reject_future", "reject_negative", "reject_quantities", "reject_timestamps"]


def reject_quantities(df: pl.DataFrame, fields: list[tuple[str, str, bool]], *, unit: str | None, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine (`bad_quantity`) the rows whose quantities are not whole eaches; add their eaches.

    Args:
      df: rows with each field's text and, when `unit` is given, `units_per_uom`.
      fields: (column of the text, field name for messages, required) per quantity; an
        optional field may be null or empty. Column `c_on_hand`'s eaches go to `_e_on_hand`,
        `_qty_raw`'s to `_e_qty_raw`.
      unit: the column of the unit code. None before units are known: then only what is no
        number at all, or beyond `MAX_EACHES` as written, is rejected (factor 1), so a row with
        several faults keeps the code it had; with a unit, the figure in eaches must be whole.
      rejected: quarantine frames to append to.
    """
    factor = pl.col("units_per_uom") if unit else pl.lit(1)
    for col, name, required in fields:
        df = df.with_columns(to_eaches(pl.col(col), factor).alias("_e"))
        problem = pl.col("_e").struct.field("problem")
        text = pl.col(col).cast(pl.String).str.strip_chars()
        present = (text.is_not_null() & (text != "")).fill_null(False)
        bad = problem.is_not_null() if required else present & problem.is_not_null()
        if unit is None:
            bad = bad & problem.is_in([NOT_A_NUMBER, OUT_OF_RANGE])
        shown = pl.when(present).then(text if unit is None else pl.format("{} {}", text, pl.col(unit))).otherwise(pl.lit("(empty)"))
        df = reject(df, bad, "bad_quantity", pl.format("field {}: {} {}", pl.lit(name), shown, problem), rejected)
        df = df.with_columns(pl.col("_e").struct.field("eaches").alias("_e_" + col.lstrip("_").removeprefix("c_"))).drop("_e")
    return df


def reject_timestamps(df: pl.DataFrame, ts: str, raw: str, field: str, *, rejected: list[pl.DataFrame], unparsed: str | None = None) -> pl.DataFrame:
    """Quarantine (`bad_timestamp`) rows whose timestamp did not parse or is out of range."""
    problem = timestamp_problem(pl.col(ts), pl.col(raw), field=field, unparsed=unparsed)
    return reject(df, problem.is_not_null(), "bad_timestamp", problem, rejected)


def reject_future(df: pl.DataFrame, ts: str, raw: str, field: str, *, spec: SourceSpec, rejected: list[pl.DataFrame], only: pl.Expr | None = None) -> pl.DataFrame:
    """Quarantine (`future_event`) events dated more than the skew past the run's cut-off.

    The reader does not know the latest as-of of the run (other sources' files), so the
    bound is the cut-off plus `spec.future_event_skew_hours`. No cut-off, no check.
    """
    if spec.cutoff is None:
        return df
    cutoff = spec.cutoff if spec.cutoff.tzinfo else spec.cutoff.replace(tzinfo=dt.UTC)
    limit = cutoff + dt.timedelta(hours=spec.future_event_skew_hours)
    late = (pl.col(ts) > limit).fill_null(False) & (only if only is not None else pl.lit(True))
    shown = f"{cutoff.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
    skew = f"{spec.future_event_skew_hours:g} h"
    reason = pl.format("field {}: {} is more than {} after the run's cut-off {}", pl.lit(field), pl.col(raw), pl.lit(skew), pl.lit(shown))
    return reject(df, late, "future_event", reason, rejected)


def reject_negative(df: pl.DataFrame, col: str, name: str, *, signed: pl.Expr, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine (`bad_quantity`) negative quantities of rows where `signed` is false: a magnitude."""
    text = pl.col(col).cast(pl.String).str.strip_chars()
    negative = (text.cast(pl.Float64, strict=False) < 0).fill_null(False) & ~signed.fill_null(False)
    reason = pl.format("field {}: {} is negative; it is a magnitude (only an adjustment is signed)", pl.lit(name), text)
    return reject(df, negative, "bad_quantity", reason, rejected)
