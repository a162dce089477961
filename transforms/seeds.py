"""Read the stream's seed positions from published `inventory_snapshot` Parquet files, in the graph.

The launcher only names the files (`invrecon.pipelines.stock_stream.latest_snapshot`, from the
commit log: metadata); the workers open them through fsspec (so local paths, `file://`, `gs://`,
`s3://` and in-process `memory://` all work), one row group per element, and turn every row into
a `transforms.stream.seed_element` pair for `RunningPosition`'s seed side input:

    file URLs ─SplitRowGroups (footer only)─▶ (url, row group) ─SpreadRowGroups─▶
      ─ReadRowGroups (sku, location, on_hand, reserved)─▶ ((sku, location), ("seed", {...}))

A snapshot's on_hand is the record system's figure rolled to that date's cut-off (DESIGN.md §6.1),
so every seed is stamped with the cut-off (`as_of_micros`): the running position ignores events
at or before it, which the snapshot already holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from invrecon.transforms.stream import seed_element

__all__ = ["SEED_COLUMNS", "ReadSeeds", "row_groups", "seed_elements"]

# What a seed needs of an inventory_snapshot row; the rest of the row is not read at all.
SEED_COLUMNS = ("sku", "location", "on_hand", "reserved")


def _open(url: str):
    fs, path = fsspec.core.url_to_fs(url)
    return fs.open(path, "rb")


def row_groups(url: str) -> Iterator[tuple[str, int]]:
    """(url, i) for every row group of a Parquet file, from its footer alone."""
    with _open(url) as f:
        n = pq.ParquetFile(f).metadata.num_row_groups
    for i in range(n):
        yield url, i


def seed_elements(table: pa.Table, *, as_of_micros: int) -> Iterator[tuple[tuple[str, str], tuple[str, dict]]]:
    """Every inventory_snapshot row of `table` as a RunningPosition seed.

    Example:
        >>> t = pa.table({"sku": ["A"], "location": ["S1"], "on_hand": [10], "reserved": [None]})
        >>> list(seed_elements(t, as_of_micros=100))
        [(('A', 'S1'), ('seed', {'on_hand': 10, 'reserved': None, 'as_of': 100}))]
    """
    for row in table.select(list(SEED_COLUMNS)).to_pylist():
        yield seed_element(row, as_of_micros=as_of_micros)


class _ReadRowGroupFn(beam.DoFn):
    """Read the seed columns of one row group of a published snapshot file."""

    def __init__(self, as_of_micros: int):
        self.as_of_micros = as_of_micros
        self.read = Metrics.counter(self.__class__, "seeds_read")

    def process(self, element: tuple[str, int]) -> Iterator[Any]:
        url, i = element
        with _open(url) as f:
            table = pq.ParquetFile(f).read_row_group(i, columns=list(SEED_COLUMNS))
        self.read.inc(table.num_rows)
        yield from seed_elements(table, as_of_micros=self.as_of_micros)


@dataclasses.dataclass(kw_only=True)
class ReadSeeds(beam.PTransform):
    """Published inventory_snapshot files -> `seed_element` pairs, read on the workers.

    Args:
      files: fsspec URLs of the Parquet files of one snapshot date (empty: no seeds, the
        positions start at 0; the steps are in the graph all the same).
      as_of_micros: that date's cut-off in µs since the epoch (UTC), the instant every seed is
        taken at.

    Example: seeded from 2026-11-30 (America/Chicago), a seed of 10 is as of
    2026-12-01T05:59:59.999Z; a sale of 2 at 2026-11-30T23:00-06:00 is already in it and changes
    nothing, one at 2026-12-01T00:05-06:00 takes the position to 8.
    """

    files: tuple[str, ...]
    as_of_micros: int

    def __post_init__(self) -> None:
        if isinstance(self.files, str):
            raise ValueError("`files` must be a sequence of URLs, not one string")
        if not isinstance(self.as_of_micros, int):
            raise ValueError(f"`as_of_micros` must be an int (µs since the epoch), got {self.as_of_micros!r}")
        self.files = tuple(self.files)

    def expand(self, pbegin):
        return (
            pbegin
            | "ListSeedFiles" >> beam.Create(list(self.files), reshuffle=False)
            | "SplitRowGroups" >> beam.FlatMap(row_groups)
            | "SpreadRowGroups" >> beam.Reshuffle()
            | "ReadRowGroups" >> beam.ParDo(_ReadRowGroupFn(self.as_of_micros))
        )
