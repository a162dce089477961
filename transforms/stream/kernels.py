"""Compute running positions a bucket at a time: the columnar kernels behind `RunningPosition`.

A bucket's positions are two frames: `books` (one row per (sku, location): a base, a seed or the
latest count, and the sum of the movements after it) and `pending` (the movements after each base,
which a late count older than some of them re-sums). `apply_movements` applies a whole batch of
movements at once and gives exactly what `PositionBook.apply` (`transforms.stream.reference`) gives
one movement at a time; the tests hold the two to each other.
"""

from __future__ import annotations

import polars as pl

from invrecon.transforms.stream.params import ARRIVAL, KEY, NO_TIME, TS

__all__ = ["BOOKS_SCHEMA", "PENDING_SCHEMA", "apply_movements", "compact_pending", "figures_at_arrival", "new_books"]

# A bucket's positions: one row per (sku, location). on_hand = base_oh + after_oh, where the base
# is a seed or the latest count (base_oh_at its instant, null: none yet) and after_oh sums the
# movements after it; reserved = base_r + after_r likewise (its base is the seed only).
BOOKS_SCHEMA = {
    "sku": pl.String, "location": pl.String, "base_oh": pl.Int64, "base_oh_at": pl.Int64, "base_r": pl.Int64,
    "base_r_at": pl.Int64, "seeded": pl.Boolean, "after_oh": pl.Int64, "after_r": pl.Int64,
}
# The movements after each base (ts, qty): what a late count, older than some of them, re-sums.
PENDING_SCHEMA = {"sku": pl.String, "location": pl.String, "ts": pl.Int64, "qty": pl.Int64}


def new_books(keys: pl.DataFrame, seeds: dict) -> pl.DataFrame:
    """Books of keys seen for the first time, from their snapshot seed (PositionBook.seed)."""
    rows = []
    for sku, location in keys.iter_rows():
        seed = seeds.get((sku, location))
        s = seed[1] if seed is not None else None
        on_hand = None if s is None else s.get("on_hand")
        rows.append((
            sku, location, int(on_hand or 0), None if on_hand is None else s["as_of"], int((s or {}).get("reserved") or 0),
            None if s is None else s["as_of"], on_hand is not None, 0, 0,
        ))
    return pl.DataFrame(rows, schema=BOOKS_SCHEMA, orient="row")


def apply_movements(books: pl.DataFrame, pending: pl.DataFrame, moves: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Apply a batch of movements (arrival order) to a bucket's positions in one columnar step.

    Exactly what `PositionBook.apply` does one movement at a time: a count sets on_hand at its
    instant if it is newer than the base; a movement adds to on_hand if it happened after the
    base. Within the batch, the base of row i is the newest of the old base and the counts up to
    i; each count that raises it starts a segment whose figure is the count plus the movements
    after it (from `pending` and from earlier rows), and the rows of a segment add a running sum.

    Args:
      books: BOOKS_SCHEMA rows, one for every key of `moves` (new keys already seeded).
      pending: PENDING_SCHEMA rows of the bucket.
      moves: sku, location, event_id, event_type, qty, reserved_delta, `_ts` (µs), `_arrival`.

    Returns:
      (books, pending, updates): updates has per movement its effect now (on_hand_change,
      reserved_change), the position after it (on_hand, reserved), `seeded`, and for the alerts
      `prev_on_hand` (before it) and `had_base` (a seed or count fixed on_hand before it).

    Example (seeded 10 at t=100; a sale of 3 at 200, a count of 5 at 300, a sale of 1 at 250
    arriving last): on_hand goes 7, 5, 5, as in PositionBook's docstring.
    """
    m = _moves_on_books(moves, books)
    m = _count_segments(m)
    m, total = _segment_totals(m, pending)
    m = _positions_after(m, total)
    books, touched = _updated_books(books, m)
    pending = _updated_pending(pending, m, touched)
    updates = m.select(
        *KEY, "event_id", "event_type", pl.col("ts").alias("occurred_at"), "on_hand_change", "reserved_change", "on_hand", "reserved",
        "seeded", "prev_on_hand", "had_base", ARRIVAL, "system", "qty", "file", "locator",
    )
    return books, pending, updates


# on_hand before a batch: the book's base plus the movements after it.
_START = pl.col("base_oh") + pl.col("after_oh")


def _moves_on_books(moves: pl.DataFrame, books: pl.DataFrame) -> pl.DataFrame:
    """The batch's movements (`_i`: arrival place, `ts`, `rd` = reserved delta) with their key's book."""
    return (
        moves.select(*KEY, "event_id", "event_type", "system", "file", "locator", pl.col(TS).alias("ts"), pl.col("qty"),
                     pl.col("reserved_delta").alias("rd"), ARRIVAL)
        .with_row_index("_i")
        .join(books, on=KEY, how="left", maintain_order="left")
    )


def _count_segments(m: pl.DataFrame) -> pl.DataFrame:
    """Cut each key's movements into segments at the counts that raise the base; sum within each.

    `_prior`: the base before the row (the old base or an earlier count of the batch);
    `_raise`: a count newer than it, which starts segment `_seg` with base instant `_b`;
    `_within`: the running sum of the segment's movements after `_b`; `reserved_change`: the
    row's reserved delta when it is after the reserved base.
    """
    over = KEY
    is_count = pl.col("event_type") == "count"
    b0 = pl.col("base_oh_at").fill_null(NO_TIME)
    m = m.with_columns(
        is_count.alias("_is_count"),
        pl.max_horizontal(b0, pl.when(is_count).then(pl.col("ts")).cum_max().forward_fill().shift(1).over(over)).alias("_prior"),
    )
    raising = pl.col("_is_count") & (pl.col("ts") > pl.col("_prior"))
    m = m.with_columns(
        raising.alias("_raise"),
        raising.cast(pl.Int64).cum_sum().over(over).alias("_seg"),
        pl.when(raising).then(pl.col("ts")).forward_fill().over(over).fill_null(b0).alias("_b"),
    )
    return m.with_columns(
        pl.when(~pl.col("_is_count") & (pl.col("ts") > pl.col("_b"))).then(pl.col("qty")).otherwise(0).cum_sum().over([*KEY, "_seg"]).alias("_within"),
        pl.when(pl.col("ts") > pl.col("base_r_at").fill_null(NO_TIME)).then(pl.col("rd")).otherwise(0).alias("reserved_change"),
    )


def _segment_totals(m: pl.DataFrame, pending: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr]:
    """(rows with `_cq`, the figure each row's segment starts from).

    Segment 0 starts from the book (`_START`); a segment a count starts, from the count `_cq`
    plus the movements after it that arrived earlier (in this batch, or `pending`).
    """
    segs = m.filter(pl.col("_raise")).select(*KEY, "_seg", pl.col("_i").alias("_start"), pl.col("ts").alias("_sb"), pl.col("qty").alias("_cq"))
    if not segs.height:
        return m.with_columns(pl.lit(None, dtype=pl.Int64).alias("_cq")), _START
    earlier = (
        segs.join(m.filter(~pl.col("_is_count")).select(*KEY, "_i", "ts", "qty"), on=KEY)
        .filter((pl.col("_i") < pl.col("_start")) & (pl.col("ts") > pl.col("_sb")))
        .group_by([*KEY, "_seg"]).agg(pl.col("qty").sum().alias("_c"))
    )
    older = (
        segs.join(pending, on=KEY).filter(pl.col("ts") > pl.col("_sb"))
        .group_by([*KEY, "_seg"]).agg(pl.col("qty").sum().alias("_p"))
    )
    segs = (
        segs.join(earlier, on=[*KEY, "_seg"], how="left").join(older, on=[*KEY, "_seg"], how="left")
        .select(*KEY, "_seg", "_cq", (pl.col("_cq") + pl.col("_c").fill_null(0) + pl.col("_p").fill_null(0)).alias("_total"))
    )
    m = m.join(segs, on=[*KEY, "_seg"], how="left", maintain_order="left")
    return m, pl.when(pl.col("_seg") == 0).then(_START).otherwise(pl.col("_total"))


def _positions_after(m: pl.DataFrame, total: pl.Expr) -> pl.DataFrame:
    """Each row's position after it (on_hand, reserved), before it (`prev_on_hand`) and its effect."""
    over = KEY
    m = m.with_columns(
        (total + pl.col("_within")).alias("on_hand"),
        (pl.col("base_r") + pl.col("after_r") + pl.col("reserved_change").cum_sum().over(over)).alias("reserved"),
    )
    return m.with_columns(
        pl.col("on_hand").shift(1).over(over).fill_null(_START).alias("prev_on_hand"),
        (pl.col("_prior") > NO_TIME).alias("had_base"),
    ).with_columns((pl.col("on_hand") - pl.col("prev_on_hand")).alias("on_hand_change"))


def _updated_books(books: pl.DataFrame, m: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(all books after the batch, the books it touched): a count-started last segment moves the base."""
    last = m.group_by(KEY, maintain_order=True).agg(
        pl.col("on_hand").last(), pl.col("reserved").last(), pl.col("_seg").last(), pl.col("_b").last(), pl.col("_cq").last(),
    )
    touched = (
        books.join(last, on=KEY, how="inner")
        .with_columns(
            pl.when(pl.col("_seg") > 0).then(pl.col("_cq")).otherwise(pl.col("base_oh")).alias("base_oh"),
            pl.when(pl.col("_seg") > 0).then(pl.col("_b")).otherwise(pl.col("base_oh_at")).alias("base_oh_at"),
        )
        .with_columns((pl.col("on_hand") - pl.col("base_oh")).alias("after_oh"), (pl.col("reserved") - pl.col("base_r")).alias("after_r"))
        .select(list(BOOKS_SCHEMA))
    )
    return pl.concat([books.join(last.select(KEY), on=KEY, how="anti"), touched]), touched


def _updated_pending(pending: pl.DataFrame, m: pl.DataFrame, touched: pl.DataFrame) -> pl.DataFrame:
    """The movements still after their key's base: the old pending and the batch's, minus what a count covers."""
    added = m.filter(~pl.col("_is_count")).select(*KEY, "ts", "qty")
    return (
        pl.concat([pending, added])
        .join(touched.select(*KEY, "base_oh_at"), on=KEY, how="left")
        .filter(pl.col("base_oh_at").is_null() | (pl.col("ts") > pl.col("base_oh_at")))
        .select(list(PENDING_SCHEMA))
    )


def compact_pending(books: pl.DataFrame, pending: pl.DataFrame, *, before: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold the movements older than `before` into the bases (PositionBook.compact, per bucket)."""
    old = pending.filter(pl.col("ts") < before)
    if not old.height:
        return books, pending
    folded = old.group_by(KEY).agg(pl.col("qty").sum().alias("_f"))
    books = books.join(folded, on=KEY, how="left").with_columns(
        (pl.col("base_oh") + pl.col("_f").fill_null(0)).alias("base_oh"), (pl.col("after_oh") - pl.col("_f").fill_null(0)).alias("after_oh"),
    ).select(list(BOOKS_SCHEMA))
    return books, pending.filter(pl.col("ts") >= before)


def figures_at_arrival(books_before: pl.DataFrame, updates: pl.DataFrame | None, figures: pl.DataFrame) -> pl.DataFrame:
    """The position each availability figure met on arrival: (figure rows, on_hand, reserved, had_base).

    A figure sees the movements that arrived before it (an as-of join on the arrival ordinal),
    else the position before the batch.
    """
    f = figures.sort(ARRIVAL).join(books_before, on=KEY, how="left", maintain_order="left").with_columns(
        (pl.col("base_oh") + pl.col("after_oh")).alias("_oh0"), (pl.col("base_r") + pl.col("after_r")).alias("_r0"),
        pl.col("base_oh_at").is_not_null().alias("_hb0"),
    )
    if updates is not None and updates.height:
        seen = updates.select(*KEY, ARRIVAL, pl.col("on_hand").alias("_oh1"), pl.col("reserved").alias("_r1"),
                              (pl.col("had_base") | (pl.col("event_type") == "count")).alias("_hb1")).sort(ARRIVAL)
        f = f.join_asof(seen, on=ARRIVAL, by=KEY, strategy="backward")
    else:
        f = f.with_columns(pl.lit(None, dtype=pl.Int64).alias("_oh1"), pl.lit(None, dtype=pl.Int64).alias("_r1"), pl.lit(None, dtype=pl.Boolean).alias("_hb1"))
    return f.with_columns(
        pl.coalesce("_oh1", "_oh0").alias("on_hand_at"), pl.coalesce("_r1", "_r0").alias("reserved_at"), pl.coalesce("_hb1", "_hb0").alias("had_base"),
    )
