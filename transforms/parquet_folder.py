"""Write tables as the Parquet files of one folder through fsspec, committed only once every bundle is done.

`WriteParquetFolder` is the batch's sink for every staged table (`write_table` names the folder
and the step); it writes any fsspec URL, `memory://` included, which Beam's own file sinks do not.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from invrecon.transforms.coders import TableCoder  # noqa: F401 - registers the coder of pa.Table elements

__all__ = ["WriteParquetFolder", "write_table"]


class _WriteBundleFileFn(beam.DoFn):
    """Write the tables of one bundle into one temporary Parquet file; emit its URL at the end.

    The file is written as the tables arrive (one row group each), so a bundle's memory is one
    table, not the bundle. A bundle the runner retries leaves its first file behind unnamed by
    any output: `_commit_files` only moves the files of the bundles that were committed.
    """

    def __init__(self, *, temp: str, schema: pa.Schema):
        self.temp, self.schema = temp, schema
        self.files_written = Metrics.counter(self.__class__, "files_written")
        self.rows_written = Metrics.counter(self.__class__, "rows_written")

    def setup(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.temp)

    def start_bundle(self) -> None:
        self.file = self.writer = self.url = None

    def process(self, table: pa.Table) -> None:
        if self.writer is None:
            name = f"{uuid.uuid4().hex}.parquet"
            self.fs.makedirs(self.root, exist_ok=True)
            self.file = self.fs.open(f"{self.root}/{name}", "wb")
            self.writer = pq.ParquetWriter(self.file, self.schema, compression="zstd")
            self.url = f"{self.temp}/{name}"
        table = table.select(self.schema.names)
        self.writer.write_table(table if table.schema.equals(self.schema) else table.cast(self.schema))
        self.rows_written.inc(table.num_rows)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.writer is None:
            return
        self.writer.close()
        self.file.close()
        self.files_written.inc()
        yield GlobalWindows.windowed_value(self.url)


def _commit_files(_, temp_urls: list[str], *, temp: str, folder: str, schema: pa.Schema) -> Iterator[str]:
    """Move the committed bundles' files to `<folder>/part-<k>-of-<n>.parquet`; yield their URLs.

    No file at all still gives one (empty, typed) file, so readers of the folder find the table.
    Safe to run again: a file already moved is not moved twice.
    """
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    urls = sorted(temp_urls)
    n = max(len(urls), 1)
    for k in range(n):
        dst = f"{root}/part-{k:05d}-of-{n:05d}.parquet"
        if not urls:
            with fs.open(dst, "wb") as f:
                pq.write_table(schema.empty_table(), f, compression="zstd")
        else:
            src = fsspec.core.url_to_fs(urls[k])[1]
            if fs.exists(src) or not fs.exists(dst):
                fs.mv(src, dst)
        yield f"{folder}/part-{k:05d}-of-{n:05d}.parquet"
    temp_fs, temp_root = fsspec.core.url_to_fs(temp)
    try:
        temp_fs.rm(temp_root, recursive=True)  # what retried bundles left behind
    except FileNotFoundError:
        pass


@dataclasses.dataclass(kw_only=True)
class WriteParquetFolder(beam.PTransform):
    """Write a PCollection of tables (or a tuple of them) as the Parquet files of `folder`, through fsspec.

    Any fsspec URL works (a path, `file://`, `s3://`, `gs://`, in-process `memory://`): Beam's
    own file sinks know neither `file://` nor `memory://`. Like Beam's file sinks, each bundle
    writes one temporary file and a last step moves the committed ones into place, so a retried
    bundle never leaves its rows twice. Returns the PCollection of the files' URLs (complete
    only once every file is in place: a side input of it waits for the whole folder). Several
    PCollections are written each by its own step, never flattened first: the in-process runner
    would hold a flattened PCollection whole in memory.

    Args:
      folder: the folder of the table's files (`<staging>/<table>`).
      temp: where the bundles write first (outside `folder`).
      schema: the files' schema; tables are conformed to it (column order, types).
    """

    folder: str
    temp: str
    schema: pa.Schema

    def __post_init__(self) -> None:
        folder, temp = self.folder.rstrip("/"), self.temp.rstrip("/")
        if not folder or not temp:
            raise ValueError("`folder` and `temp` must be URLs of folders")
        # The commit deletes `temp` once its files are moved: inside `folder` it would take the table with it.
        if temp == folder or temp.startswith(f"{folder}/"):
            raise ValueError("`temp` must be outside `folder`")

    def expand(self, tables):
        parts = tables if isinstance(tables, (tuple, list)) else (tables,)
        fn = _WriteBundleFileFn(temp=self.temp, schema=self.schema)
        urls = [t | f"WriteBundleFiles{k or ''}" >> beam.ParDo(fn).with_output_types(str) for k, t in enumerate(parts)]
        temp_urls = urls[0] if len(urls) == 1 else urls | "FlattenFileUrls" >> beam.Flatten()
        return (
            parts[0].pipeline
            | "Once" >> beam.Create([None])
            | "CommitFiles" >> beam.FlatMap(
                _commit_files, beam.pvalue.AsList(temp_urls), temp=self.temp, folder=self.folder, schema=self.schema,
            ).with_output_types(str)
        )


def write_table(pcoll, name: str, schema: pa.Schema, staging: str):
    """Stage a table as `<staging>/<name>/part-*.parquet` (`WriteParquetFolder`); `pcoll` may be a tuple."""
    return pcoll | f"Write{''.join(w.title() for w in name.split('_'))}" >> WriteParquetFolder(
        folder=f"{staging}/{name}", temp=f"{staging}/_tmp/{name}", schema=schema,
    )
