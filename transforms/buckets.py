"""The hash-bucket shuffle: split tables by a stable hash of key columns, group them by bucket.

`split_by_bucket` cuts a table into (bucket, (tag, IPC bytes)) pairs; `ShuffleBuckets` groups
them by bucket; the consumer gets its bucket's tables back with `bucket_tables` and joins them
with `concat_tables`.

With a `spill` folder, the tables do not ride the runner's shuffle at all: each bundle writes
its pairs to one file per bucket (`<spill>/<bucket>/<uuid>.bin`) and only the file's URL is
grouped. A runner that holds a shuffle in memory (the in-process FnApiRunner, the DirectRunner)
then holds file names, and the memory of a batch is bounded by its largest bucket, not by the
day. The files live under the run's staging folder and go with it.

Two bucket hashes, on purpose: the stream buckets with crc32 (`transforms.stream.batches.
stable_bucket`) because its buckets key Beam state that outlives a worker and a release, so its
hash must never change; the batch's buckets live only inside one run's shuffle, so it takes
polars' vectorized hash, stable within a polars version (every worker of a run has the same one).
The two never meet: no batch step reads a stream bucket or its state, and the stream never reads
a batch shuffle or its spill files. Unifying them would tie the stream's state to polars' release
or put a per-value Python crc32 on the batch's every row.

Example:
    keyed = tables | "KeyBySku" >> beam.FlatMap(split_by_bucket, ["sku"], 32, "positions")
    grouped = keyed | "GroupBySku" >> ShuffleBuckets(spill=f"{staging}/_shuffle/sku")
    # in the consumer, for (bucket, tagged) in grouped:
    positions = concat_tables(t for tag, t in bucket_tables(tagged) if tag == "positions")
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import fsspec
import polars as pl
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows

from invrecon.transforms.coders import ipc_bytes, read_ipc

__all__ = ["SPILL_BYTES", "Bucketed", "ShuffleBuckets", "bucket_tables", "concat_tables", "split_by_bucket"]

# A (bucket, (tag, table)) pair of a hash-bucket shuffle; the table travels as a compressed
# Arrow IPC stream (`coders.ipc_bytes`), or, spilled, as ("@spill", url of a file of such pairs).
Bucketed = tuple[int, tuple[str, bytes]]
# What one bundle gathers before it writes its spill files (one per bucket).
SPILL_BYTES = 64 << 20
_SPILLED = "@spill"


def _bucket_expr(cols: list[str], buckets: int) -> pl.Expr:
    # polars' hash is stable within one polars version, and every worker runs the same image.
    return (pl.concat_str([pl.col(c) for c in cols], separator="\x1f").hash(seed=0) % buckets).cast(pl.Int64)


def split_by_bucket(table: pa.Table, cols: list[str], buckets: int, tag: str, *,
                    keep: Sequence[str] | None = None) -> Iterator[Bucketed]:
    """Split one table into (bucket, (tag, sub-table)) pairs by a stable hash of `cols`.

    Args:
      keep: the columns the consumer reads (default all): the others do not cross the shuffle
        (`concat_tables` gives them back as nulls).
    """
    if table.num_rows == 0:
        return
    schema = pa.schema([table.schema.field(c) for c in keep]) if keep else table.schema
    df = pl.from_arrow(table).with_columns(_bucket_expr(cols, buckets).alias("_bucket"))
    for (b,), part in df.partition_by("_bucket", as_dict=True).items():
        yield int(b), (tag, ipc_bytes(part.select(schema.names).to_arrow().cast(schema)))


def concat_tables(tables: Iterable[pa.Table | bytes], schema: pa.Schema) -> pl.DataFrame:
    """One frame of `schema` from tables or their IPC bytes; a column a table lacks is null."""
    parts, filled = [], set()
    for t in tables:
        t = read_ipc(t) if isinstance(t, bytes) else t
        if not t.num_rows:
            continue
        for f in schema:
            if f.name not in t.schema.names:
                t = t.append_column(f.with_nullable(True), pa.nulls(t.num_rows, f.type))
                filled.add(f.name)
        parts.append(t.select(schema.names))
    if filled:  # a column left behind is null here, whatever the schema says of it
        schema = pa.schema([f.with_nullable(True) if f.name in filled else f for f in schema])
    table = pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def bucket_tables(tagged: Iterable[tuple[str, bytes | str]]) -> list[tuple[str, bytes]]:
    """A bucket's (tag, IPC bytes) pairs, reading back the ones that were spilled to files."""
    out = []
    for tag, value in tagged:
        if tag == _SPILLED:
            out.extend(_read_spill(value))
        else:
            out.append((tag, value))
    return out


def _write_spill(f, pairs: list[tuple[str, bytes]]) -> None:
    for tag, blob in pairs:
        name = tag.encode()
        f.write(len(name).to_bytes(4, "little") + name + len(blob).to_bytes(8, "little"))
        f.write(blob)


def _read_spill(url: str) -> Iterator[tuple[str, bytes]]:
    with fsspec.open(url, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 4], "little")
        tag = data[at + 4:at + 4 + n].decode()
        at += 4 + n
        size = int.from_bytes(data[at:at + 8], "little")
        yield tag, data[at + 8:at + 8 + size]
        at += 8 + size


class _SpillFn(beam.DoFn):
    """Gather a bundle's pairs per bucket; write each bucket's as one file; emit its URL."""

    def __init__(self, folder: str, limit: int = SPILL_BYTES):
        self.folder, self.limit = folder, limit

    def setup(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.folder)

    def start_bundle(self) -> None:
        self.pending: dict[int, list[tuple[str, bytes]]] = {}
        self.size = 0

    def process(self, element: Bucketed) -> Iterator[tuple[int, tuple[str, str]]]:
        bucket, (tag, blob) = element
        self.pending.setdefault(bucket, []).append((tag, blob))
        self.size += len(blob)
        if self.size >= self.limit:
            yield from self._flush()

    def finish_bundle(self) -> Iterator:
        for kv in self._flush():
            yield GlobalWindows.windowed_value(kv)

    def _flush(self) -> Iterator[tuple[int, tuple[str, str]]]:
        # A retried bundle writes new files; only the URLs of the committed attempt are read.
        for bucket, pairs in sorted(self.pending.items()):
            name = f"{bucket:05d}/{uuid.uuid4().hex}.bin"
            self.fs.makedirs(f"{self.root}/{bucket:05d}", exist_ok=True)
            with self.fs.open(f"{self.root}/{name}", "wb") as f:
                _write_spill(f, pairs)
            yield bucket, (_SPILLED, f"{self.folder}/{name}")
        self.pending, self.size = {}, 0


@dataclasses.dataclass(kw_only=True)
class ShuffleBuckets(beam.PTransform):
    """Group (bucket, (tag, IPC bytes)) pairs by bucket, through files under `spill` if given.

    The input may be a tuple of PCollections: with `spill`, each is spilled by its own step and
    only the files' names are flattened (the in-process runner holds a flattened PCollection
    whole in memory). Consumers read each bucket's values with `bucket_tables` either way.
    """

    spill: str | None = None

    def expand(self, pairs):
        parts = pairs if isinstance(pairs, (tuple, list)) else (pairs,)
        if self.spill:
            fn = _SpillFn(self.spill)
            parts = tuple(p | f"SpillToFiles{k or ''}" >> beam.ParDo(fn).with_output_types(tuple[int, tuple[str, str]])
                          for k, p in enumerate(parts))
        grouped = parts[0] if len(parts) == 1 else parts | "FlattenBuckets" >> beam.Flatten()
        return grouped | "GroupByBucket" >> beam.GroupByKey()
