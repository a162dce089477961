"""Tabular reader: rows of a file that repeat an earlier one in every column."""

from __future__ import annotations

import polars as pl

from invrecon.transforms.readers.tabular import Repeats


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
