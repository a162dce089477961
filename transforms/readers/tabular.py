"""Read tabular files (CSV, Parquet, JSON Lines) through a column mapping into canonical positions."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.schemas import POSITION
from invrecon.transforms.canonical import apply_uom, map_locations, map_skus, parse_timestamps
from invrecon.transforms.crosswalks import Crosswalks
from invrecon.transforms.quarantine import reject
from invrecon.transforms.readers.checks import reject_quantities, reject_timestamps
from invrecon.transforms.readers.common import (
    FileResult,
    SourceSpec,
    all_rejected,
    file_rejected,
    guarded,
    quarantine_table,
    to_arrow,
    unreadable,
)
from invrecon.transforms.textfiles import BATCH_ROWS, MAX_COLUMNS, Unreadable, read_csv_frames, read_jsonl_frames

__all__ = ["Repeats", "canonical_positions", "read_tabular"]

# A row left out as the file was read: (line number, its text or None, why).
Malformed = tuple[int, str | None, str]


def read_tabular(uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> Iterator[FileResult]:
    """Read one positions / availability file through its column mapping.

    Yields one `FileResult` per batch. Rejections: `malformed_row` (wrong field count, not a
    JSON object, a line over MAX_LINE_BYTES), `missing_column` (the mapping names a column the
    file lacks: every row), `duplicate_row` (`Repeats`), `bad_quantity`, `bad_timestamp`, plus
    the canonical codes of `transforms.canonical`. A file that cannot be read (opened, parsed; a
    header or schema over MAX_COLUMNS; a Parquet file cut short) gives one `unreadable_file` row
    per record it holds, where that can be known (its non-blank lines but the header, its rows),
    else one.
    """
    try:
        frames, bad, word = _frames(uri, spec.format)
        first = next(frames, None)
    except Unreadable as e:
        yield from unreadable(spec, uri, e)
        return
    if first is None:
        if bad:
            yield _malformed(spec, uri, bad)
        return
    columns = dict(spec.columns)
    present = set(first.columns) if isinstance(first, pl.DataFrame) else _parquet_names(uri)
    missing = [c for c in columns if c not in present]
    if missing and isinstance(first, pl.DataFrame) and not first.height and first.width > 1:
        # no record to reject, but the header (schema) is wrong: the file itself is
        if bad:
            yield _malformed(spec, uri, bad)
        yield file_rejected(spec, uri, "missing_column", _missing_reason(uri, missing))
        return
    repeats = Repeats(word=word)
    for df in itertools.chain([first], frames):
        if isinstance(df, Unreadable):
            yield from unreadable(spec, uri, df)
        elif df.height:
            locators = lambda: df.select(pl.format(f"{word} {{}}", "_line")).to_series()  # noqa: E731
            yield guarded(spec, uri, locators, lambda: _canonical_batch(df, uri, spec, crosswalks, columns, missing=missing, repeats=repeats))
    if bad:  # filled as the frames were read
        yield _malformed(spec, uri, sorted(bad, key=lambda b: b[0]))


def _missing_reason(uri: str, missing: list[str]) -> str:
    return f"{uri}: mapped column(s) {', '.join(missing)} missing from the file"


def _iter_parquet_frames(uri: str) -> Iterator[pl.DataFrame | Unreadable]:
    """Batches of a Parquet file with `_line` (the row number), a row group at a time.

    A row group that cannot be decoded comes out as an `Unreadable` naming its rows, and the
    next one is read; a file whose footer cannot be read, or wider than MAX_COLUMNS, raises.
    """
    with fsspec.open(uri, "rb") as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, ValueError) as e:
            raise Unreadable(f"not a readable Parquet file: {e}") from None
        meta = pf.metadata
        if meta.num_columns > MAX_COLUMNS:
            raise Unreadable(f"the file has {meta.num_columns} columns; files of more than {MAX_COLUMNS} (MAX_COLUMNS) are not read",
                              np.arange(1, meta.num_rows + 1), "row")
        offset = 0
        for group in range(meta.num_row_groups):
            size = meta.row_group(group).num_rows
            frames = []
            try:
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
                    frames.append(pl.from_arrow(batch))
            except (OSError, pa.ArrowException, ValueError) as e:
                yield Unreadable(f"row group {group + 1} (rows {offset + 1}-{offset + size}) cannot be decoded: {e}",
                                  np.arange(offset + 1, offset + size + 1), "row")
                frames = []
            at = offset
            for df in frames:
                assert isinstance(df, pl.DataFrame)
                yield df.with_columns(pl.int_range(at + 1, at + 1 + df.height, dtype=pl.Int64).alias("_line"))
                at += df.height
            offset += size


def _frames(uri: str, fmt: str | None) -> tuple[Iterator[pl.DataFrame | Unreadable], list[Malformed], str]:
    """(batches, rows left out, locator word) of a positions file; raises `Unreadable`."""
    try:
        if fmt == "csv":
            frames, bad = read_csv_frames(uri, rows_per_frame=BATCH_ROWS)
            return frames, bad, "line"
        if fmt == "jsonl":
            frames, bad = read_jsonl_frames(uri, rows_per_frame=BATCH_ROWS)
            return frames, bad, "line"
        if fmt == "parquet":
            frames = _iter_parquet_frames(uri)
            first = next(frames, None)
            return itertools.chain([] if first is None else [first], frames), [], "row"
    except OSError as e:
        raise Unreadable(f"cannot open: {e}") from None
    raise ValueError(f"unsupported format {fmt!r}")  # pragma: no cover - config validation rejects it


def _parquet_names(uri: str) -> set[str]:
    with fsspec.open(uri, "rb") as f:
        return set(pq.read_schema(f).names)


def _malformed(spec: SourceSpec, uri: str, bad: list[Malformed]) -> FileResult:
    rows = pl.DataFrame(
        {"_file": [uri] * len(bad), "_locator": [f"line {n}" for n, _, _ in bad], "_raw": [t for _, t, _ in bad], "_reason": [w for _, _, w in bad]},
        schema={"_file": pl.String, "_locator": pl.String, "_raw": pl.String, "_reason": pl.String},
    )
    return all_rejected(spec, rows, "malformed_row", pl.col("_reason"))


def _raw_json(columns: list[str]) -> pl.Expr:
    """A row's source columns as one JSON object (its `raw`, and its identity for `duplicate_row`)."""
    if not columns:  # JSON lines that are all `{}`
        return pl.lit("{}")
    return pl.struct([pl.col(c).cast(pl.String) for c in columns]).struct.json_encode()


# What `Repeats` remembers of a row: its two hashes and the number of its first occurrence.
_SEEN = np.dtype([("h1", np.uint64), ("h2", np.uint64), ("first", np.int64)])


@dataclasses.dataclass(kw_only=True)
class Repeats:
    """The rows of a file seen so far, to find exact repeats (`duplicate_row`) across its batches.

    Rows are compared by a 128-bit hash of their `_raw` (every source column; two different
    rows share one with odds of 2^-128); earlier batches are remembered by those hashes and
    the first row's number, 24 bytes a row, in one array sorted by the first hash: a batch is
    looked up by binary search (its keys sorted, so the searches walk the array once) and
    inserted in one pass. A join of each batch with every row before it built a hash table of
    them all each time: up to 1.5 GB more at the end of a 7.8M-row extract.

    Attributes:
      word: the locator's word for a record, `line` or `row` (reasons name both occurrences).
    """

    word: str
    seen: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, _SEEN))

    def reject(self, df: pl.DataFrame, rejected: list[pl.DataFrame]) -> pl.DataFrame:
        """`df` less the rows that repeat an earlier one in every column (quarantined)."""
        df = df.with_columns(pl.col("_raw").hash(seed=1).alias("_h1"), pl.col("_raw").hash(seed=2).alias("_h2"))
        earlier = self._earlier(df["_h1"].to_numpy(), df["_h2"].to_numpy())
        df = df.with_columns(pl.Series("_seen", earlier, dtype=pl.Int64)).with_columns(
            pl.when(pl.col("_seen") >= 0).then(pl.col("_seen")).otherwise(pl.col("_line").min().over("_h1", "_h2")).alias("_first")
        )
        reason = pl.format(f"{self.word} {{}} repeats {self.word} {{}} in every column; counted once", pl.col("_line"), pl.col("_first"))
        df = reject(df, pl.col("_line") != pl.col("_first"), "duplicate_row", reason, rejected)
        new = np.empty(df.height, _SEEN)  # the rows kept: first occurrences, each hash pair once
        new["h1"], new["h2"], new["first"] = df["_h1"].to_numpy(), df["_h2"].to_numpy(), df["_first"].to_numpy()
        new = new[np.argsort(new["h1"], kind="stable")]
        self.seen = np.insert(self.seen, np.searchsorted(self.seen["h1"], new["h1"]), new)
        return df.drop("_h1", "_h2", "_seen", "_first")

    def _earlier(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """The first row number of each (h1, h2) in an earlier batch, -1 where none."""
        out = np.full(len(h1), -1, np.int64)
        seen = self.seen
        if not len(seen):
            return out
        order = np.argsort(h1)
        at = np.minimum(np.searchsorted(seen["h1"], h1[order]), len(seen) - 1)
        same = seen["h1"][at] == h1[order]
        match = same & (seen["h2"][at] == h2[order])
        out[order[match]] = seen["first"][at[match]]
        for k in np.flatnonzero(same & ~match):  # two rows' first hashes alike: along the run of them
            i, j = order[k], at[k] + 1
            while j < len(seen) and seen["h1"][j] == h1[i]:
                if seen["h2"][j] == h2[i]:
                    out[i] = seen["first"][j]
                    break
                j += 1
        return out


def _canonical_batch(df: pl.DataFrame, uri: str, spec: SourceSpec, crosswalks: Crosswalks, columns: dict[str, str], *, missing: list[str], repeats: Repeats) -> FileResult:
    """One batch of source rows (with `_line`) to canonical positions, or `missing_column` rows."""
    src_cols = [c for c in df.columns if c != "_line"]
    df = df.with_columns(
        pl.lit(uri).alias("_file"),
        pl.format(f"{repeats.word} {{}}", pl.col("_line")).alias("_locator"),
        _raw_json(src_cols).alias("_raw"),
    )
    if missing:
        return all_rejected(spec, df, "missing_column", _missing_reason(uri, missing))
    read, rejected = df.height, []
    df = repeats.reject(df, rejected)
    result = canonical_positions(df, spec=spec, crosswalks=crosswalks, columns=columns, rejected=rejected)
    result.read = read
    return result


def _field(columns: dict[str, str], field: str) -> str:
    """A canonical field as messages name it: its source column, e.g. `LABST (on_hand)`."""
    src = next((s for s, d in columns.items() if d == field), None)
    return field if src is None or src == field else f"{src} ({field})"


def _position_quantities(spec: SourceSpec, columns: dict[str, str]) -> list[tuple[str, str, bool]]:
    """The quantity fields of a positions / availability row: its own quantity is required."""
    main = "available" if spec.kind == "availability" else "on_hand"
    return [(f"c_{name}", _field(columns, name), name == main) for name in ("on_hand", "reserved", "available")]


def _position_columns(df: pl.DataFrame, spec: SourceSpec, columns: dict[str, str]) -> pl.DataFrame:
    """The mapped source columns as `c_<field>`, with unit_cost and as_of parsed."""
    dtypes = dict(df.schema)
    df = df.select("_file", "_locator", "_raw", *[pl.col(src).alias(f"c_{dst}") for src, dst in columns.items()])
    for field in ("on_hand", "reserved", "available", "unit_cost", "uom_source"):
        if f"c_{field}" not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(f"c_{field}"))
    as_of_src = next((s for s, d in columns.items() if d == "as_of"), None)
    return df.with_columns(
        pl.col("c_unit_cost").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("unit_cost"),
        parse_timestamps(pl.col("c_as_of"), timezone=spec.timezone, dtype=dtypes.get(as_of_src)).alias("as_of")
        if as_of_src else pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("as_of"),
    )


def canonical_positions(df: pl.DataFrame, *, spec: SourceSpec, crosswalks: Crosswalks, columns: dict[str, str],
                        rejected: list[pl.DataFrame] | None = None) -> FileResult:
    """Map one batch of source rows to canonical positions (DESIGN.md §5).

    Args:
      df: source rows with `_file`, `_locator`, `_raw` and the source columns `columns` maps.
      columns: source column -> canonical field (the source's mapping).
      rejected: quarantine frames of the batch so far (the `FileResult`'s quarantine starts with them).
    """
    read = df.height
    rejected = [] if rejected is None else rejected
    quantities = _position_quantities(spec, columns)
    df = reject_quantities(_position_columns(df, spec, columns), quantities, unit=None, rejected=rejected)
    df = reject_timestamps(df, "as_of", "c_as_of", _field(columns, "as_of"), rejected=rejected)
    df = df.with_columns(pl.lit(spec.sku_id_type).alias("_id_type"), pl.lit(spec.location_system or spec.system).alias("_loc_system"))
    df, rej = map_skus(df, crosswalks, id_col="c_sku", type_col="_id_type", label=_field(columns, "sku"))
    rejected += rej
    loc = _field(columns, "location")
    df, rej = map_locations(df, crosswalks, col="c_location", system_col="_loc_system", out="location", label=loc)
    rejected += rej
    df = reject(df, pl.col("location").is_null(), "missing_field", f"field {loc}: location is empty", rejected)
    df = df.with_columns(pl.col("c_uom_source").cast(pl.String).fill_null("EA").alias("uom_source"))
    df, rej = apply_uom(df, crosswalks, uom_col="uom_source")
    rejected += rej
    df = reject_quantities(df, quantities, unit="uom_source", rejected=rejected)
    df = df.with_columns(
        pl.lit(spec.system).alias("system"),
        pl.lit(spec.name).alias("source"),
        pl.col("_file").alias("file"),
        pl.col("_locator").alias("locator"),
        pl.col("_e_on_hand").alias("on_hand"),
        pl.col("_e_reserved").alias("reserved"),
        pl.col("_e_available").alias("available"),
        (pl.col("unit_cost") / pl.col("units_per_uom")).alias("unit_cost"),
    )
    return FileResult(positions=to_arrow(df, POSITION), quarantine=quarantine_table(rejected, spec.name), read=read)
