"""WriteParquetFiles: a bundle's rows as one Parquet file per partition, renamed into place."""

from __future__ import annotations

import apache_beam as beam
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest

from invrecon.schemas import QUARANTINE
from invrecon.transforms.stream import STREAM_TABLES, WriteParquetFiles, as_position_row, as_position_table
from tests.transforms.stream.helpers import availability, canonical


def _quarantine(day: str, *locators: str) -> pa.Table:
    n = len(locators)
    return pa.table({"run_id": ["t"] * n, "source": ["s"] * n, "file": ["f"] * n, "locator": list(locators),
                     "reason_code": ["late_event"] * n, "reason": ["r"] * n, "raw": ["{}"] * n, "_date": [day] * n})


def test_write_parquet_files_partitions_by_date_and_conforms_to_the_schema(tmp_path):
    """Tables and dict rows, over two dates, land under `quarantine/event_date=<date>/` as files of
    the QUARANTINE schema (the `_date` column is the folder, not a column), none left half-written."""
    schema, partition = STREAM_TABLES["quarantine"]
    tables = [_quarantine("2026-11-30", "line 1", "line 2"), _quarantine("2026-12-01", "line 3")]
    row = {"run_id": "t", "source": "s", "file": "f", "locator": "line 4", "reason_code": "duplicate_event", "reason": "r", "raw": None,
           "_date": "2026-11-30"}
    with BeamTestPipeline(runner="FnApiRunner") as p:
        _ = (p | beam.Create([*tables, row]) | "Write" >> WriteParquetFiles(root=str(tmp_path), table="quarantine", schema=schema,
                                                                          partition=partition, prefix="run-t"))
    files = sorted(tmp_path.rglob("*"))
    parquet = [f for f in files if f.is_file()]
    assert all(f.name.startswith("run-t-") and f.suffix == ".parquet" for f in parquet), parquet
    assert {f.parent.name for f in parquet} == {"event_date=2026-11-30", "event_date=2026-12-01"}
    got = pl.read_parquet(tmp_path / "quarantine" / "**" / "*.parquet", hive_partitioning=True)
    assert sorted(got.select(pl.col("event_date").cast(pl.String), "locator").rows()) == [
        ("2026-11-30", "line 1"), ("2026-11-30", "line 2"), ("2026-11-30", "line 4"), ("2026-12-01", "line 3")]
    assert all(pq.read_schema(f).equals(QUARANTINE) for f in parquet)


def test_availability_figures_are_written_as_positions():
    _, figures, _ = canonical(availability("A1", "10:30", 9))
    positions = as_position_table(figures)
    assert positions.schema.names == STREAM_TABLES["availability"][0].names
    assert positions.select(["system", "sku", "location", "available", "on_hand"]).to_pylist() == [
        {"system": "commerce", "sku": "SKU000003", "location": "DC01", "available": 9, "on_hand": None}]


def test_a_figure_as_a_position_row_is_the_row_of_the_position_table():
    _, figures, _ = canonical(availability("A1", "10:30", 9))
    (figure,) = figures.to_pylist()
    assert as_position_row(figure) == as_position_table(figures).to_pylist()[0]
