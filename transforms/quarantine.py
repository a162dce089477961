"""Quarantine rows: the tag of rejects, the reject-and-quarantine helper every reader uses, and the bounded `raw` text of a rejected record."""

from __future__ import annotations

import polars as pl

# `quarantine.raw` holds at most this many bytes of the record as written: a longer one is cut
# (at a character boundary) and ends with "…[cut: N bytes in all]".
RAW_MAX_BYTES = 4096

# The tag of the rejected rows' output of every multi-output step, batch and stream alike: a
# step's rejects are `outputs.quarantine`.
TAG = "quarantine"


def cut_raw(head: bytes, size: int) -> str:
    """The first bytes of a `size`-byte record, as `quarantine.raw`: whole when it fits in
    RAW_MAX_BYTES, else cut at a character boundary and ending "…[cut: <size> bytes in all]"."""
    if size <= RAW_MAX_BYTES and len(head) == size:
        return head.decode("utf-8", errors="replace")
    marker = f"\u2026[cut: {size} bytes in all]"
    return head[: RAW_MAX_BYTES - len(marker.encode("utf-8"))].decode("utf-8", errors="ignore") + marker


def _cut(text: str) -> str:
    data = text.encode("utf-8")
    return cut_raw(data, len(data))


def _cap_series(values: pl.Series) -> pl.Series:
    values = values.cast(pl.String)
    long = (values.str.len_bytes() > RAW_MAX_BYTES).fill_null(False).arg_true()
    if not len(long):
        return values
    return values.scatter(long, pl.Series([_cut(t) for t in values.gather(long).to_list()], dtype=pl.String))


def cap_raw(col: pl.Expr) -> pl.Expr:
    """`col` (text) cut to RAW_MAX_BYTES bytes, with a marker saying it was cut and from what size.

    Example:
        >>> out = pl.select(cap_raw(pl.lit("x" * 5000))).item()
        >>> len(out.encode()), out[-30:]
        (4096, 'xxxxx…[cut: 5000 bytes in all]')
    """
    return col.map_batches(_cap_series, return_dtype=pl.String, is_elementwise=True)


def quarantine_rows(df: pl.DataFrame, code: str, reason: pl.Expr | str) -> pl.DataFrame:
    """Select the quarantine columns (locator, reason_code, reason, raw) of rejected rows.

    `raw` is capped at RAW_MAX_BYTES (`cap_raw`).
    """
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select(
        pl.col("_file").alias("file"),
        pl.col("_locator").alias("locator"),
        pl.lit(code).alias("reason_code"),
        reason_expr.cast(pl.String).alias("reason"),
        cap_raw(pl.col("_raw")).alias("raw"),
    )


def quarantine_by_code(df: pl.DataFrame) -> list[pl.DataFrame]:
    """Quarantine frames of rows that each carry their own reason code and reason (`_code`, `_reason`).

    One frame per code, codes in order of first appearance, rows in their order within a code.

    Example:
        >>> df = pl.DataFrame({"_file": ["f"] * 3, "_locator": ["line 1", "line 2", "line 3"], "_raw": [None] * 3,
        ...                    "_code": ["a", "b", "a"], "_reason": ["x", "y", "z"]})
        >>> [q["locator"].to_list() for q in quarantine_by_code(df)]
        [['line 1', 'line 3'], ['line 2']]
    """
    return [quarantine_rows(g, code, pl.col("_reason")) for (code,), g in df.group_by("_code", maintain_order=True)]


def split_rows(df: pl.DataFrame, bad: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, rejected) rows of `df` by a total mask: every row lands on exactly one side.

    A null in `bad` (a comparison with a null operand, say) counts as bad: a row whose
    verdict is unknown is quarantined, never dropped from both sides.

    Example:
        >>> df = pl.DataFrame({"q": [1.0, None, 2.5]})
        >>> kept, bad = split_rows(df, pl.col("q") != pl.col("q").round(0))
        >>> kept["q"].to_list(), bad["q"].to_list()
        ([1.0], [None, 2.5])
    """
    mask = df.select(bad.fill_null(True).alias("_bad")).to_series()
    if not mask.any():
        return df, df.clear()
    return df.filter(~mask), df.filter(mask)


def reject(df: pl.DataFrame, bad: pl.Expr, code: str, reason: pl.Expr | str, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine the rows where `bad` holds (or is null) into `rejected`; return the others.

    Args:
      df: rows with the `_file`, `_locator` and `_raw` columns of `quarantine_rows`.
      bad: a boolean expression over `df`; null counts as true (see `split_rows`).
      code: the reason code of the rejected rows.
      reason: their reason, a string or an expression over `df`.
      rejected: the list of quarantine frames to append to.
    """
    kept, bad_rows = split_rows(df, bad)
    if bad_rows.height:
        rejected.append(quarantine_rows(bad_rows, code, reason))
    return kept
