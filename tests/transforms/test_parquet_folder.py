"""WriteParquetFolder on the in-process runner: real Parquet files, moved into place only when committed."""

from __future__ import annotations

import pathlib
import uuid

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.transforms.parquet_folder import WriteParquetFolder, write_table

SCHEMA = pa.schema([pa.field("sku", pa.string(), nullable=False), pa.field("qty", pa.int64())])


def _rows(folder: pathlib.Path) -> list[tuple]:
    return sorted((r["sku"], r["qty"]) for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist())


def test_tables_are_conformed_to_the_schema_and_written_as_the_folders_parts(tmp_path: pathlib.Path):
    folder, temp = tmp_path / "out" / "positions", tmp_path / "out" / "_tmp" / "positions"
    # Columns in another order and narrower types: the files are of SCHEMA all the same.
    a = pa.table({"qty": pa.array([1, 2], pa.int32()), "sku": ["A", "B"]})
    b = pa.table({"sku": ["C"], "qty": pa.array([3], pa.int64()), "extra": ["dropped"]})
    with BeamTestPipeline(runner="FnApiRunner") as p:
        urls = (p | "First" >> beam.Create([a]), p | "Second" >> beam.Create([b])) | "WritePositions" >> WriteParquetFolder(
            folder=str(folder), temp=str(temp), schema=SCHEMA)
        assert_that(urls | "Names" >> beam.Map(lambda u: u.rsplit("/", 1)[-1]),
                    equal_to(["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]))
    assert _rows(folder) == [("A", 1), ("B", 2), ("C", 3)]
    assert all(pq.read_schema(f).equals(SCHEMA) for f in folder.glob("*.parquet"))
    assert not temp.exists()  # the bundles' files were moved, the rest removed


def test_a_bundle_file_no_committed_output_names_is_never_published(tmp_path: pathlib.Path):
    folder, temp = tmp_path / "positions", tmp_path / "_tmp" / "positions"
    temp.mkdir(parents=True)
    # What a bundle the runner retried leaves behind: a complete file no output names.
    pq.write_table(pa.table({"sku": ["GHOST"], "qty": [99]}, schema=SCHEMA), temp / f"{uuid.uuid4().hex}.parquet")
    with BeamTestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create([pa.table({"sku": ["A"], "qty": [1]}, schema=SCHEMA)]) | WriteParquetFolder(
            folder=str(folder), temp=str(temp), schema=SCHEMA)
    assert _rows(folder) == [("A", 1)]
    assert not temp.exists()


def test_no_table_at_all_still_gives_one_empty_typed_file():
    staging = f"memory://parquet-folder-{uuid.uuid4().hex}"
    with BeamTestPipeline(runner="FnApiRunner") as p:
        urls = write_table(p | beam.Create([]).with_output_types(pa.Table), "in_transit", SCHEMA, staging)
        assert_that(urls, equal_to([f"{staging}/in_transit/part-00000-of-00001.parquet"]))
    fs, path = fsspec.core.url_to_fs(f"{staging}/in_transit/part-00000-of-00001.parquet")
    with fs.open(path, "rb") as f:
        table = pq.read_table(f)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_temp_must_be_outside_the_folder_and_options_are_keyword_only():
    with pytest.raises(ValueError, match="outside"):
        WriteParquetFolder(folder="/out/t", temp="/out/t/_tmp", schema=SCHEMA)
    with pytest.raises(TypeError):
        WriteParquetFolder("/out/t", "/out/_tmp/t", SCHEMA)  # type: ignore[misc]
