"""Write the stream's tables as Parquet files, one per bundle and partition: `WriteParquetFiles`, `STREAM_TABLES`.

    <root>/<table>/<partition>=<value>/<prefix>-<uuid>.parquet

A bundle is the unit a runner commits, so a file never holds half of one; each file is written
under a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from invrecon.schemas.tables import STREAM_TABLES  # the stream's tables: name -> (schema, partition column)

__all__ = ["STREAM_TABLES", "WriteParquetFiles", "as_position_row", "as_position_table"]


def _partitions(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(partition value, rows) of a table: its `_date`, else the UTC date of occurred_at / as_of."""
    if "_date" in table.column_names:
        values = pc.unique(table["_date"])
        if len(values) == 1:  # a pane, a batch of one day: no split
            yield values[0].as_py() or "unknown", table
            return
    df = pl.from_arrow(table)
    if "_date" in df.columns:
        part = pl.col("_date").fill_null("unknown")
    else:
        when = "occurred_at" if "occurred_at" in df.columns else "as_of"
        part = pl.col(when).dt.date().cast(pl.String).fill_null("unknown")
    df = df.with_columns(part.alias("_part"))
    for (value,), rows in df.partition_by("_part", as_dict=True).items():
        yield value, rows.drop("_part").to_arrow()


class _WriteBundleFn(beam.DoFn):
    """Write each bundle's rows as one Parquet file per partition, named after the run and a uuid.

    A bundle is the unit a runner commits, so a file never holds half of one; a retried bundle
    may write its rows again under another name (movements carry event_id for that). Elements
    are tables (or dict rows).
    """

    def __init__(self, *, root: str, table: str, schema: pa.Schema, partition: str, prefix: str):
        self.root = root
        self.table = table
        self.schema = schema
        self.partition = partition
        self.prefix = prefix
        self.rows_written = Metrics.counter(self.__class__, f"{table}_rows_written")

    def start_bundle(self) -> None:
        self.parts: dict[str, list[pa.Table]] = {}
        self.rows: list[dict] = []

    def process(self, element) -> None:
        if isinstance(element, dict):
            self.rows.append(element)
            return
        for part, rows in _partitions(element):
            self.parts.setdefault(part, []).append(rows)

    def _conform(self, tables: list[pa.Table]) -> pa.Table:
        """A partition's tables as one table of the schema: one select and cast per file."""
        names = self.schema.names
        tables = [t.select(names) for t in tables]
        try:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except pa.ArrowInvalid:  # parts of other (castable) types: conform each first
            table = pa.concat_tables([t.cast(self.schema) for t in tables])
        return table if table.schema.equals(self.schema) else table.cast(self.schema)

    def finish_bundle(self) -> None:
        if self.rows:
            for part, rows in _partitions(pa.Table.from_pylist(self.rows)):
                self.parts.setdefault(part, []).append(rows)
        fs, _, _ = fsspec.get_fs_token_paths(self.root)
        for part, tables in self.parts.items():
            folder = f"{self.root}/{self.table}/{self.partition}={part}"
            fs.makedirs(folder, exist_ok=True)
            name = f"{self.prefix}-{uuid.uuid4().hex[:12]}.parquet"
            table = self._conform(tables)
            tmp = f"{folder}/.{name}.tmp"
            with fs.open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
            fs.mv(tmp, f"{folder}/{name}")
            self.rows_written.inc(table.num_rows)
        self.parts, self.rows = {}, []


@dataclasses.dataclass(kw_only=True)
class WriteParquetFiles(beam.PTransform):
    """Write tables (or dict rows) to `<root>/<table>/<partition>=<value>/<prefix>-<uuid>.parquet`."""

    root: str
    table: str
    schema: pa.Schema
    partition: str
    prefix: str

    def expand(self, rows):
        return rows | "WriteBundles" >> beam.ParDo(
            _WriteBundleFn(root=self.root, table=self.table, schema=self.schema, partition=self.partition, prefix=self.prefix)
        )


def as_position_row(r: dict) -> dict:
    """One availability figure as a POSITION dict (for WriteParquetFiles)."""
    return {"system": r["system"], "sku": r["sku"], "location": r["location"], "as_of": r["occurred_at"],
            "on_hand": None, "reserved": None, "available": r["qty"], "uom_source": None, "units_per_uom": None,
            "unit_cost": None, "source": r["source"], "file": r["file"], "locator": r["locator"]}


def as_position_table(table: pa.Table) -> pa.Table:
    """A table of availability figures as POSITION rows (partitioned by event date)."""
    df = pl.from_arrow(table)
    return df.select(
        "system", "sku", "location", pl.col("occurred_at").alias("as_of"), pl.lit(None, dtype=pl.Int64).alias("on_hand"),
        pl.lit(None, dtype=pl.Int64).alias("reserved"), pl.col("qty").alias("available"), pl.lit(None, dtype=pl.String).alias("uom_source"),
        pl.lit(None, dtype=pl.Int64).alias("units_per_uom"), pl.lit(None, dtype=pl.Float64).alias("unit_cost"), "source", "file", "locator",
    ).to_arrow()

