"""Read source files into canonical records: positions, movements and in-transit.

One function per source kind turns one input file into batches of canonical rows plus the rows it
rejected, as polars frames:

- `read_tabular`: ERP extracts, store counts and availability feeds (CSV / Parquet / JSON Lines)
  through a column mapping;
- `read_events`: stock events, one JSON object per line;
- `read_edi` (streaming) / `canonical_from_edi`: the records `transforms.edi.parse_edi`
  extracts from an EDI file.

Every function conserves its count of records: `read == written + quarantined` for each file.
One bad value rejects its record, never its file. A file that cannot be read at all gives one
`unreadable_file` row per record it holds where that can be known (a CSV's lines, a Parquet
file's rows), else one row naming the file; a failure nobody foresaw costs its batch as one
`reader_error` row per record. Nothing raises out of a reader for bad data.

Limits on a file's shape are module constants: MAX_COLUMNS, MAX_LINE_BYTES (`transforms.textfiles`),
`transforms.edi.values.MAX_SEGMENTS_PER_TRANSACTION`, `transforms.canonical.RAW_MAX_BYTES`,
`MAX_EACHES` and the TIMESTAMP_MIN .. TIMESTAMP_MAX range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterator

import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.schemas import EVENT_TYPES, IN_TRANSIT, MOVEMENT, POSITION, QUARANTINE
from invrecon.transforms.canonical import (
    NOT_A_NUMBER,
    OUT_OF_RANGE,
    Crosswalks,
    apply_uom,
    map_locations,
    map_skus,
    parse_timestamps,
    quarantine_rows,
    reject,
    timestamp_problem,
    to_eaches,
)
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS
from invrecon.transforms.textfiles import (
    BATCH_ROWS,
    MAX_COLUMNS,
    MAX_LINE_BYTES,
    Unreadable,
    iter_line_chunks,
    joined_texts,
    json_object,
    read_csv_frames,
    read_jsonl_frames,
    too_long,
)
from invrecon.transforms.textio import utf8_stream

__all__ = [
    "FileResult",
    "SourceSpec",
    "LineLocator",
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "canonical_events_frame",
    "canonical_from_edi",
    "decode_event_chunk",
    "decode_event_texts",
    "iter_line_chunks",
    "parse_event",
    "read_edi",
    "read_events",
    "read_tabular",
    "split_missing_fields",
]

log = logging.getLogger("invrecon.sources")

# Direction of each event type's quantity on on_hand (DESIGN.md §5). adjustment carries its own
# sign; count is absolute; reservation / release move `reserved` only.
EVENT_SIGN = {
    "receipt": 1, "return": 1, "transfer_in": 1,
    "sale": -1, "shipment": -1, "transfer_out": -1,
    "adjustment": 1, "count": 1,
}
RESERVED_SIGN = {"reservation": 1, "release": -1}


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """What a reader needs to know of a configured source; picklable, no config objects."""

    name: str
    kind: str
    system: str | None
    format: str | None = None
    columns: tuple[tuple[str, str], ...] = ()  # source column -> canonical field
    sku_id_type: str = "sku"
    location_system: str | None = None
    qualifiers: tuple[tuple[str, str], ...] = ()
    timezone: str = "UTC"
    # The run's cut-off (UTC), and how far past it an event may be dated: a later one is a
    # `future_event` (config `quality.future_event_skew_hours`). No cut-off (the stream): no check.
    cutoff: dt.datetime | None = dataclasses.field(default=None, kw_only=True)
    future_event_skew_hours: float = dataclasses.field(default=48.0, kw_only=True)


@dataclasses.dataclass
class FileResult:
    """Canonical output of one file (or one batch of it)."""

    positions: pa.Table | None = None
    movements: pa.Table | None = None
    in_transit: pa.Table | None = None
    quarantine: pa.Table | None = None
    read: int = 0


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _to_arrow(df: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast a polars frame with the schema's columns to that exact Arrow schema."""
    table = df.select([f.name for f in schema]).to_arrow()
    return table.cast(schema)


def _quarantine_table(frames: list[pl.DataFrame], source: str) -> pa.Table:
    frames = [f for f in frames if f.height]
    if not frames:
        return _empty(QUARANTINE)
    q = pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.lit("").alias("run_id"), pl.lit(source).alias("source")
    )
    return _to_arrow(q, QUARANTINE)


def _quarantine_frame(table: pa.Table | None) -> pl.DataFrame:
    """A quarantine table back as the frame `_quarantine_table` takes (its run_id / source dropped)."""
    if table is None or not table.num_rows:
        return pl.DataFrame()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df.drop("run_id", "source")


def _guarded(spec: SourceSpec, uri: str, locators: Callable[[], list[str] | pl.Series] | pl.Series,
             canonicalize: Callable[[], FileResult]) -> FileResult:
    """`canonicalize()`; should it fail in a way nobody foresaw, one `reader_error` row per
    record of the batch (`locators`, or a function giving them: made only then), so the run
    goes on and conservation still counts records."""
    try:
        return canonicalize()
    except Exception as e:  # noqa: BLE001 - a bug must cost its batch, not the file or the run
        locators = locators() if callable(locators) else locators
        log.warning("%s: %s: %d records quarantined as reader_error", spec.name, uri, len(locators), exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        reason = f"{uri}: {type(e).__name__}: {first} (a reader bug: the batch of {len(locators)} records is quarantined)"
        rows = pl.DataFrame({"_locator": pl.Series(list(locators), dtype=pl.String)}).select(
            pl.lit(uri).alias("_file"), "_locator", pl.lit(None, dtype=pl.String).alias("_raw")
        )
        return FileResult(quarantine=_quarantine_table([quarantine_rows(rows, "reader_error", reason)], spec.name), read=len(locators))


def _file_rejected(spec: SourceSpec, uri: str, code: str, message: str, raw: str | None = None) -> FileResult:
    row = pl.DataFrame(
        {"_file": [uri], "_locator": ["file"], "_raw": [raw]},
        schema={"_file": pl.String, "_locator": pl.String, "_raw": pl.String},
    )
    return FileResult(quarantine=_quarantine_table([quarantine_rows(row, code, message)], spec.name), read=1)


def _raw_json(columns: list[str]) -> pl.Expr:
    """A row's source columns as one JSON object (its `raw`, and its identity for `duplicate_row`)."""
    if not columns:  # JSON lines that are all `{}`
        return pl.lit("{}")
    return pl.struct([pl.col(c).cast(pl.String) for c in columns]).struct.json_encode()


def _unreadable(spec: SourceSpec, uri: str, e: Unreadable) -> Iterator[FileResult]:
    """`unreadable_file` rows: one per record the file holds (`read` counts them), else one."""
    reason = f"{uri}: file unreadable: {e.reason}"
    if e.numbers is None or not len(e.numbers):
        yield _file_rejected(spec, uri, "unreadable_file", reason)
        return
    for at in range(0, len(e.numbers), BATCH_ROWS):
        part = pl.Series("_n", e.numbers[at:at + BATCH_ROWS], dtype=pl.Int64)
        rows = pl.DataFrame(part).select(
            pl.lit(uri).alias("_file"), pl.format(f"{e.word} {{}}", "_n").alias("_locator"), pl.lit(None, dtype=pl.String).alias("_raw")
        )
        yield FileResult(quarantine=_quarantine_table([quarantine_rows(rows, "unreadable_file", reason)], spec.name), read=len(part))


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


def _frames(uri: str, fmt: str | None) -> tuple[Iterator[pl.DataFrame | Unreadable], list[tuple[int, str | None, str]], str]:
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


def _malformed(spec: SourceSpec, uri: str, bad: list[tuple[int, str | None, str]]) -> FileResult:
    q = pl.DataFrame(
        {"_file": [uri] * len(bad), "_locator": [f"line {n}" for n, _, _ in bad], "_raw": [t for _, t, _ in bad], "_reason": [w for _, _, w in bad]},
        schema={"_file": pl.String, "_locator": pl.String, "_raw": pl.String, "_reason": pl.String},
    )
    return FileResult(quarantine=_quarantine_table([quarantine_rows(q, "malformed_row", pl.col("_reason"))], spec.name), read=len(bad))


def read_tabular(uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> Iterator[FileResult]:
    """Read one positions / availability file through its column mapping.

    Yields one `FileResult` per batch. Rejections: `malformed_row` (wrong field count, not a
    JSON object, a line over MAX_LINE_BYTES), `missing_column` (the mapping names a column the
    file lacks: every row), `bad_quantity`, `bad_timestamp`, plus the canonical codes of
    `transforms.canonical`. A file that cannot be read (opened, parsed; a header or schema over
    MAX_COLUMNS; a Parquet file cut short) gives one `unreadable_file` row per record it holds,
    where that can be known (its non-blank lines but the header, its rows), else one.
    """
    try:
        frames, bad, word = _frames(uri, spec.format)
        first = next(frames, None)
    except Unreadable as e:
        yield from _unreadable(spec, uri, e)
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
        reason = f"{uri}: mapped column(s) {', '.join(missing)} missing from the file"
        if bad:
            yield _malformed(spec, uri, bad)
        yield _file_rejected(spec, uri, "missing_column", reason)
        return
    repeats = _Repeats(word)
    for df in itertools.chain([first], frames):
        if isinstance(df, Unreadable):
            yield from _unreadable(spec, uri, df)
        elif df.height:
            locators = lambda: df.select(pl.format(f"{word} {{}}", "_line")).to_series()  # noqa: E731
            yield _guarded(spec, uri, locators, lambda: _canonical_batch(df, uri, spec, crosswalks, columns, missing=missing, repeats=repeats))
    if bad:  # filled as the frames were read
        yield _malformed(spec, uri, sorted(bad, key=lambda b: b[0]))


# What `_Repeats` remembers of a row: its two hashes and the number of its first occurrence.
_SEEN = np.dtype([("h1", np.uint64), ("h2", np.uint64), ("first", np.int64)])


@dataclasses.dataclass
class _Repeats:
    """The rows of a file seen so far, to find exact repeats (`duplicate_row`) across its batches.

    Rows are compared by a 128-bit hash of their `_raw` (every source column; two different
    rows share one with odds of 2^-128); earlier batches are remembered by those hashes and
    the first row's number, 24 bytes a row, in one array sorted by the first hash: a batch is
    looked up by binary search (its keys sorted, so the searches walk the array once) and
    inserted in one pass. A join of each batch with every row before it built a hash table of
    them all each time: up to 1.5 GB more at the end of a 7.8M-row extract.
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


def _canonical_batch(df: pl.DataFrame, uri: str, spec: SourceSpec, crosswalks: Crosswalks, columns: dict[str, str], *, missing: list[str], repeats: _Repeats) -> FileResult:
    """One batch of source rows (with `_line`) to canonical positions, or `missing_column` rows."""
    src_cols = [c for c in df.columns if c != "_line"]
    df = df.with_columns(
        pl.lit(uri).alias("_file"),
        pl.format(f"{repeats.word} {{}}", pl.col("_line")).alias("_locator"),
        _raw_json(src_cols).alias("_raw"),
    )
    if missing:
        reason = f"{uri}: mapped column(s) {', '.join(missing)} missing from the file"
        return FileResult(quarantine=_quarantine_table([quarantine_rows(df, "missing_column", reason)], spec.name), read=df.height)
    read, rejected = df.height, []
    df = repeats.reject(df, rejected)
    result = _canonical_positions(df, spec, crosswalks, columns)
    result.read = read
    result.quarantine = _quarantine_table([*rejected, _quarantine_frame(result.quarantine)], spec.name)
    return result


def _reject_quantities(df: pl.DataFrame, fields: list[tuple[str, str, bool]], *, unit: str | None, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine (`bad_quantity`) the rows whose quantities are not whole eaches; add their eaches.

    Args:
      df: rows with each field's text and, when `unit` is given, `units_per_uom`.
      fields: (column of the text, field name for messages, required) per quantity; an
        optional field may be null or empty. Column `c_on_hand`'s eaches go to `_e_on_hand`,
        `_qty_raw`'s to `_e_qty_raw`.
      unit: the column of the unit code. None before units are known: then only what is no
        number at all, or beyond `MAX_EACHES` as written, is rejected (factor 1), so a row with
        several faults keeps the code it had; with a unit, the figure in eaches must be whole.
      rejected: quarantine frames to append to.
    """
    factor = pl.col("units_per_uom") if unit else pl.lit(1)
    for col, name, required in fields:
        df = df.with_columns(to_eaches(pl.col(col), factor).alias("_e"))
        problem = pl.col("_e").struct.field("problem")
        text = pl.col(col).cast(pl.String).str.strip_chars()
        present = (text.is_not_null() & (text != "")).fill_null(False)
        bad = problem.is_not_null() if required else present & problem.is_not_null()
        if unit is None:
            bad = bad & problem.is_in([NOT_A_NUMBER, OUT_OF_RANGE])
        shown = pl.when(present).then(text if unit is None else pl.format("{} {}", text, pl.col(unit))).otherwise(pl.lit("(empty)"))
        df = reject(df, bad, "bad_quantity", pl.format("field {}: {} {}", pl.lit(name), shown, problem), rejected)
        df = df.with_columns(pl.col("_e").struct.field("eaches").alias("_e_" + col.lstrip("_").removeprefix("c_"))).drop("_e")
    return df


def _reject_timestamps(df: pl.DataFrame, ts: str, raw: str, field: str, *, rejected: list[pl.DataFrame], unparsed: str | None = None) -> pl.DataFrame:
    """Quarantine (`bad_timestamp`) rows whose timestamp did not parse or is out of range."""
    problem = timestamp_problem(pl.col(ts), pl.col(raw), field=field, unparsed=unparsed)
    return reject(df, problem.is_not_null(), "bad_timestamp", problem, rejected)


def _reject_future(df: pl.DataFrame, ts: str, raw: str, field: str, *, spec: SourceSpec, rejected: list[pl.DataFrame], only: pl.Expr | None = None) -> pl.DataFrame:
    """Quarantine (`future_event`) events dated more than the skew past the run's cut-off.

    The reader does not know the latest as-of of the run (other sources' files), so the
    bound is the cut-off plus `spec.future_event_skew_hours`. No cut-off, no check.
    """
    if spec.cutoff is None:
        return df
    cutoff = spec.cutoff if spec.cutoff.tzinfo else spec.cutoff.replace(tzinfo=dt.UTC)
    limit = cutoff + dt.timedelta(hours=spec.future_event_skew_hours)
    late = (pl.col(ts) > limit).fill_null(False) & (only if only is not None else pl.lit(True))
    shown = f"{cutoff.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
    skew = f"{spec.future_event_skew_hours:g} h"
    reason = pl.format("field {}: {} is more than {} after the run's cut-off {}", pl.lit(field), pl.col(raw), pl.lit(skew), pl.lit(shown))
    return reject(df, late, "future_event", reason, rejected)


def _reject_negative(df: pl.DataFrame, col: str, name: str, *, signed: pl.Expr, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine (`bad_quantity`) negative quantities of rows where `signed` is false: a magnitude."""
    text = pl.col(col).cast(pl.String).str.strip_chars()
    negative = (text.cast(pl.Float64, strict=False) < 0).fill_null(False) & ~signed.fill_null(False)
    reason = pl.format("field {}: {} is negative; it is a magnitude (only an adjustment is signed)", pl.lit(name), text)
    return reject(df, negative, "bad_quantity", reason, rejected)


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


def _canonical_positions(df: pl.DataFrame, spec: SourceSpec, crosswalks: Crosswalks, columns: dict[str, str]) -> FileResult:
    """Map one batch of renamed source rows to canonical positions (DESIGN.md §5)."""
    read = df.height
    rejected: list[pl.DataFrame] = []
    quantities = _position_quantities(spec, columns)
    df = _reject_quantities(_position_columns(df, spec, columns), quantities, unit=None, rejected=rejected)
    df = _reject_timestamps(df, "as_of", "c_as_of", _field(columns, "as_of"), rejected=rejected)
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
    df = _reject_quantities(df, quantities, unit="uom_source", rejected=rejected)
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
    return FileResult(positions=_to_arrow(df, POSITION), quarantine=_quarantine_table(rejected, spec.name), read=read)


_EVENT_FIELDS = ("event_id", "event_type", "occurred_at", "location", "qty")
_EVENT_COLUMNS = ("event_id", "event_type", "occurred_at", "system", "location", "id_type", "item_id", "qty", "uom", "reference", "counterparty_location", "_locator", "_raw")


def parse_event(text: str, *, locator: str) -> tuple[dict | None, tuple[str, str] | None]:
    """Parse one stock event (a JSON object, DESIGN.md §5) into flat string fields.

    Returns:
      (fields, None) for a usable event, where fields has the keys `canonical_events_frame` takes;
      (None, (reason_code, reason)) for `malformed_event` or `missing_field`.

    Example:
        >>> fields, err = parse_event('{"event_id": "e1", "event_type": "sale", "occurred_at":'
        ...     ' "2026-11-30T12:00:00-06:00", "location": "0001", "item": {"id_type": "sku",'
        ...     ' "id": "A"}, "qty": 2}', locator="line 1")
        >>> fields["item_id"], err
        ('A', None)
    """
    ev, why = json_object(text)
    if ev is None:
        return None, ("malformed_event", f"{locator}: {why if why != 'not a JSON object' else 'an event must be a JSON object'}")
    missing = [k for k in _EVENT_FIELDS if ev.get(k) in (None, "")]
    item = ev.get("item")
    if not isinstance(item, dict) or item.get("id") in (None, ""):
        missing.append("item.id")
    if missing:
        return None, ("missing_field", f"{locator}: field {', '.join(missing)} missing or empty")
    q = ev["qty"]
    cp = ev.get("counterparty_location")
    return {
        "event_id": str(ev["event_id"]),
        "event_type": str(ev["event_type"]),
        "occurred_at": str(ev["occurred_at"]),
        "system": None if ev.get("system") is None else str(ev["system"]),
        "location": str(ev["location"]),
        "id_type": str(item.get("id_type") or "sku"),
        "item_id": str(item["id"]),
        "qty": str(q),
        "uom": str(ev.get("uom") or "EA"),
        "reference": None if ev.get("reference") is None else str(ev["reference"]),
        "counterparty_location": None if cp is None else str(cp),
        "_locator": locator,
        "_raw": text,
    }, None


# Shape of a stock event for polars' JSON decoder: a chunk of lines that all decode to it takes
# the columnar fast path; a chunk with a line that does not falls back to `parse_event` per line.
_EVENT_DTYPE = pl.Struct(
    {
        "event_id": pl.String, "event_type": pl.String, "occurred_at": pl.String, "system": pl.String,
        "location": pl.String, "item": pl.Struct({"id_type": pl.String, "id": pl.String}), "qty": pl.String,
        "uom": pl.String, "reference": pl.String, "counterparty_location": pl.String,
    }
)
_EVENT_SCHEMA = dict(_EVENT_DTYPE.to_schema())  # the same shape as a frame schema, for read_ndjson
# Lines per decode attempt. Each polars call has a fixed cost, so canonicalizing 100k lines at
# once costs ~2.5x less per line than 20k (measured). A run with a broken line is halved until
# the line stands alone (`decode_event_texts`); runs this short go line by line.
EVENT_CHUNK = 100_000
_FALLBACK_LINES = 32


def _or_default(value: pl.Expr, default: str) -> pl.Expr:
    """`value or default`, as `parse_event` reads an optional field: null and "" take the default."""
    return pl.when(value.is_null() | (value == "")).then(pl.lit(default)).otherwise(value)


def decode_event_chunk(texts: list[str] | pl.Series, positions: list[int] | pl.Series) -> pl.DataFrame | None:
    """Decode a run of event payloads at once; None when any of them is not an event object.

    polars' NDJSON reader parses the joined lines ~5x faster than `str.json_decode` on one core;
    a line it cannot take as one object of `_EVENT_DTYPE` (not JSON, an array, an `item` that is
    not an object, two objects on a line) fails the run and the caller falls back. Each row
    keeps its `_pos` (from `positions`) and `_raw` text.
    """
    texts = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    try:
        decoded = pl.read_ndjson(io.BytesIO(joined_texts(texts)), schema=_EVENT_SCHEMA)
    except pl.exceptions.PolarsError:
        return None
    if decoded.height != len(texts):
        return None
    return decoded.select(
        *[pl.col(c) for c in ("event_id", "event_type", "occurred_at", "system", "location")],
        _or_default(pl.col("item").struct.field("id_type"), "sku").alias("id_type"),
        pl.col("item").struct.field("id").alias("item_id"),
        pl.col("qty"),
        _or_default(pl.col("uom"), "EA").alias("uom"),
        pl.col("reference"),
        pl.col("counterparty_location"),
        pl.Series("_pos", positions, dtype=pl.Int64),
        texts.alias("_raw"),
    )


def split_missing_fields(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events with every required field, events missing some, with `_reason`) of a decoded run."""
    empty = {c: pl.col(c).is_null() | (pl.col(c) == "") for c in (*_EVENT_FIELDS, "item_id")}
    names = [pl.when(cond).then(pl.lit("item.id" if c == "item_id" else c)) for c, cond in empty.items()]
    df = df.with_columns(pl.concat_list(names).list.drop_nulls().alias("_missing"))
    ok = df.filter(pl.col("_missing").list.len() == 0).drop("_missing")
    missing = df.filter(pl.col("_missing").list.len() > 0).with_columns(
        pl.format("field {} missing or empty", pl.col("_missing").list.join(", ")).alias("_reason")
    )
    return ok, missing


@dataclasses.dataclass(frozen=True)
class LineLocator:
    """`line <number>` of the payload at a position, from the line numbers of a chunk."""

    numbers: pl.Series

    def __call__(self, i: int) -> str:
        return f"line {self.numbers[i]}"


def _locators(locator: Callable[[int], str], positions: pl.Series) -> pl.Series:
    """`locator` of many positions: columnar for a `LineLocator`, else one by one."""
    if isinstance(locator, LineLocator):
        return pl.select(pl.format("line {}", pl.lit(locator.numbers.gather(positions)))).to_series()
    return pl.Series([locator(i) for i in positions.to_list()], dtype=pl.String)


_DECODED = {**{c: pl.String for c in _EVENT_COLUMNS}, "_pos": pl.Int64}


def decode_event_texts(texts: pl.Series, locator: Callable[[int], str]) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """Decode event payloads: (events, rejected), the one decoder of the batch and the stream.

    events: the columns `canonical_events_frame` takes (`_locator` from `locator`) plus `_pos`,
    the payload's position in `texts`, in order. rejected: (position, reason code, reason) of
    each payload that is not an event object (`malformed_event`) or misses a required field
    (`missing_field`); the reason starts with `locator(position)`.

    Payloads that look like one object are decoded at once by `decode_event_chunk`; a run it
    cannot decode is halved until the bad payloads stand alone, and those (and payloads that do
    not look like an object) go through `parse_event` one by one, so a 1% share of broken lines
    costs a few small decodes, not the chunk's speed.
    """
    looks = texts.str.starts_with("{") & texts.str.ends_with("}")
    frames: list[pl.DataFrame] = []
    rows: list[dict] = []
    rejected: list[tuple[int, str, str]] = []

    def one_by_one(idx: list[int]) -> None:
        for i in idx:
            fields, err = parse_event(texts[i], locator=locator(i))
            if err is not None:
                rejected.append((i, *err))
            else:
                fields["_pos"] = i
                rows.append(fields)

    def decode(idx: list[int]) -> None:
        if len(idx) <= _FALLBACK_LINES:
            one_by_one(idx)
            return
        df = decode_event_chunk(texts.gather(idx), idx)
        if df is None:
            mid = len(idx) // 2
            decode(idx[:mid])
            decode(idx[mid:])
        else:
            frames.append(df)

    simple = looks.arg_true().to_list()
    if len(simple) < len(texts):
        one_by_one((~looks).arg_true().to_list())
    if simple:
        decode(simple)
    parts = []
    if frames:
        ok, missing = split_missing_fields(pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0])
        rejected.extend((i, "missing_field", f"{locator(i)}: {reason}") for i, reason in missing.select("_pos", "_reason").iter_rows())
        parts.append(ok.with_columns(_locators(locator, ok["_pos"]).alias("_locator")))
    if rows:
        parts.append(pl.DataFrame(rows, schema=_DECODED))
    events = pl.concat([p.select(list(_DECODED)) for p in parts], how="vertical_relaxed") if parts else pl.DataFrame(schema=_DECODED)
    return (events if len(parts) < 2 else events.sort("_pos")), sorted(rejected)


def read_events(uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> Iterator[FileResult]:
    """Read one JSON Lines file of stock events into canonical movements (not yet de-duplicated).

    The file is decoded by its BOM (UTF-16 / UTF-32), else as UTF-8 (bad bytes replaced).
    Rejections: `malformed_event` (not JSON / not an object / over MAX_LINE_BYTES), `missing_field`,
    `unknown_event_type`, `bad_quantity`, `bad_timestamp`, and the canonical id codes.
    """
    try:
        f = fsspec.open(uri, "rb").open()
    except OSError as e:
        yield _file_rejected(spec, uri, "unreadable_file", f"{uri}: file unreadable: cannot open: {e}")
        return
    good: list[pl.DataFrame] = []
    bad: list[tuple[int, str | None, str, str]] = []
    overlong: list[tuple[int, int]] = []
    pending = 0
    with f:
        for numbers, texts in iter_line_chunks(utf8_stream(f), chunk=EVENT_CHUNK, max_line_bytes=MAX_LINE_BYTES, overlong=overlong):
            events, rejected = decode_event_texts(texts, LineLocator(numbers))
            bad.extend((numbers[i], texts[i], code, reason) for i, code, reason in rejected)
            if events.height:
                good.append(events.drop("_pos"))
                pending += events.height
            if pending >= BATCH_ROWS:
                yield _events_batch(good, uri, spec, crosswalks)
                good, pending = [], 0
    bad.extend((n, None, "malformed_event", too_long(f"line {n}", size)) for n, size in overlong)
    if bad:
        q = pl.DataFrame(
            {"_file": [uri] * len(bad), "_locator": [f"line {b[0]}" for b in bad], "_raw": [b[1] for b in bad], "_code": [b[2] for b in bad], "_reason": [b[3] for b in bad]},
            schema={"_file": pl.String, "_locator": pl.String, "_raw": pl.String, "_code": pl.String, "_reason": pl.String},
        )
        frames = [quarantine_rows(g, code, pl.col("_reason")) for (code,), g in q.group_by("_code", maintain_order=True)]
        yield FileResult(quarantine=_quarantine_table(frames, spec.name), read=len(bad))
    if good:
        yield _events_batch(good, uri, spec, crosswalks)


def _events_batch(frames: list[pl.DataFrame], uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> FileResult:
    df = pl.concat(frames, how="diagonal_relaxed")
    return _guarded(spec, uri, df["_locator"], lambda: canonical_events_frame(df, uri=uri, spec=spec, crosswalks=crosswalks))


def canonical_events_frame(df: pl.DataFrame, *, uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> FileResult:
    """Canonicalize a frame of parsed events (the columns `parse_event` returns), columnar.

    `decode_event_chunk` + `split_missing_fields` make such a frame from raw lines at once.
    """
    df = df.select(list(_EVENT_COLUMNS)).rename({"qty": "_qty_raw"}).with_columns(pl.lit(uri).alias("_file"))
    read = df.height
    rejected: list[pl.DataFrame] = []
    required = {"event_id": "event_id", "event_type": "event_type", "occurred_at": "occurred_at", "location": "location",
                "_qty_raw": "qty", "item_id": "item.id"}
    empty = pl.concat_list([pl.when(pl.col(c).is_null() | (pl.col(c) == "")).then(pl.lit(name)) for c, name in required.items()])
    df = df.with_columns(empty.list.drop_nulls().alias("_missing"))
    reason = pl.format("field {} missing or empty", pl.col("_missing").list.join(", "))
    df = reject(df, pl.col("_missing").list.len() > 0, "missing_field", reason, rejected).drop("_missing")
    df = df.with_columns(
        parse_timestamps(pl.col("occurred_at"), timezone=spec.timezone).alias("_ts"),
        pl.col("system").fill_null(spec.system or "").alias("system"),
    )
    reason = pl.format("field event_type: {} is not one of " + ", ".join(EVENT_TYPES), pl.col("event_type"))
    df = reject(df, ~pl.col("event_type").is_in(list(EVENT_TYPES)), "unknown_event_type", reason, rejected)
    df = _reject_quantities(df, [("_qty_raw", "qty", True)], unit=None, rejected=rejected)
    df = _reject_negative(df, "_qty_raw", "qty", signed=pl.col("event_type") == "adjustment", rejected=rejected)
    df = _reject_future(df, "_ts", "occurred_at", "occurred_at", spec=spec, rejected=rejected)
    df = _reject_timestamps(df, "_ts", "occurred_at", "occurred_at", rejected=rejected)
    df, rej = map_skus(df, crosswalks, id_col="item_id", type_col="id_type")
    rejected += rej
    df, rej = map_locations(df, crosswalks, col="location", system_col="system", out="location")
    rejected += rej
    df, rej = map_locations(df, crosswalks, col="counterparty_location", system_col="system", out="counterparty_location")
    rejected += rej
    df, rej = apply_uom(df, crosswalks, uom_col="uom")
    rejected += rej
    df = _reject_quantities(df, [("_qty_raw", "qty", True)], unit="uom", rejected=rejected)
    eaches = pl.col("_e_qty_raw")
    sign = pl.col("event_type").replace_strict(EVENT_SIGN, default=0, return_dtype=pl.Int64)
    rsign = pl.col("event_type").replace_strict(RESERVED_SIGN, default=0, return_dtype=pl.Int64)
    df = df.with_columns(
        (eaches * sign).alias("qty"),
        (eaches * rsign).alias("reserved_delta"),
        pl.col("_ts").alias("occurred_at"),
        pl.lit(spec.name).alias("source"),
        pl.col("_file").alias("file"),
        pl.col("_locator").alias("locator"),
    )
    return FileResult(movements=_to_arrow(df, MOVEMENT), quarantine=_quarantine_table(rejected, spec.name), read=read)


def _locator(rec: dict) -> str:
    c = rec.get("control") or {}
    parts = [f"segment {rec.get('segment')}"]
    ids = [f"{k[:3].upper() if k != 'transaction' else 'ST'} {c[k]}" for k in ("interchange", "group", "transaction") if c.get(k)]
    if ids:
        parts.append("(" + " / ".join(ids).replace("INT", "ISA").replace("GRO", "GS") + ")")
    return " ".join(parts)


# EDI records canonicalized at a time by `read_edi`.
EDI_BATCH_RECORDS = 50_000


def read_edi(uri: str, spec: SourceSpec, crosswalks: Crosswalks, *, acks=None) -> Iterator[FileResult]:
    """Read one EDI file into canonical records, streaming (`canonical_from_edi` per batch).

    The file is read in blocks (`transforms.edi.parse_edi_stream`) and its records are
    canonicalized EDI_BATCH_RECORDS at a time, so memory per file is one transaction (at most
    MAX_SEGMENTS_PER_TRANSACTION segments) and one batch, whatever the file's size.

    Args:
      acks: an `transforms.edi.AckCollector` to fill with the file's 997s in the same pass.
    """
    from invrecon.transforms.edi import parse_edi_stream

    try:
        f = fsspec.open(uri, "rb").open()
    except OSError as e:
        yield _file_rejected(spec, uri, "unreadable_file", f"{uri}: file unreadable: cannot open: {e}")
        return
    with f:
        records = parse_edi_stream(f, file=uri, qualifiers=dict(spec.qualifiers) or None, acks=acks)
        while batch := list(itertools.islice(records, EDI_BATCH_RECORDS)):
            yield _guarded(spec, uri, lambda: [_locator(r) for r in batch], lambda: canonical_from_edi(batch, uri, spec, crosswalks))


def _edi_errors(errors: list[dict], uri: str) -> list[pl.DataFrame]:
    """Quarantine frames of the parser's error dicts, each with the parser's code."""
    if not errors:
        return []
    q = pl.DataFrame(
        {
            "_file": [uri] * len(errors),
            "_locator": [_locator(e) for e in errors],
            "_raw": [json.dumps(e, default=str) for e in errors],
            "_code": [str(e.get("code") or "edi_error") for e in errors],
            "_reason": [str(e.get("message") or "") for e in errors],
        }
    )
    return [quarantine_rows(g, code, pl.col("_reason")) for (code,), g in q.group_by("_code", maintain_order=True)]


_EDI_STRINGS = ("_qty_raw", "qty_type", "c_location", "c_from", "c_to", "shipment_id", "event_type", "reference", "_when", "_expected", "_item")


def _edi_frame(recs: list[dict], uri: str) -> pl.DataFrame:
    """One row per extracted EDI record, its fields as text (`_rec` numbers the records)."""
    def text(v) -> str | None:
        return None if v is None else str(v)

    return pl.DataFrame(
        {
            "_rec": list(range(len(recs))),
            "_kind": [r["kind"] for r in recs],
            "_file": [uri] * len(recs),
            "_locator": [_locator(r) for r in recs],
            "_raw": [json.dumps(r, default=str) for r in recs],
            "_qty_raw": [text(r.get("qty")) for r in recs],
            "uom": [str(r.get("uom") or "EA") for r in recs],
            "qty_type": [text(r.get("qty_type")) for r in recs],
            "c_location": [text(r.get("location")) for r in recs],
            "c_from": [text(r.get("from_location")) for r in recs],
            "c_to": [text(r.get("to_location")) for r in recs],
            "shipment_id": [text(r.get("shipment_id")) for r in recs],
            "event_type": [text(r.get("event_type")) for r in recs],
            "reference": [text(r.get("reference") or r.get("shipment_id")) for r in recs],
            "_when": [text(r.get("as_of") or r.get("occurred_at") or r.get("shipped_at")) for r in recs],
            "_expected": [text(r.get("expected_at")) for r in recs],
            "_item": [text(r.get("item_id")) for r in recs],
        },
        schema_overrides={"_rec": pl.Int64, **{k: pl.String for k in _EDI_STRINGS}},
    )


def _edi_skus(df: pl.DataFrame, recs: list[dict], spec: SourceSpec, crosswalks: Crosswalks) -> pl.DataFrame:
    """Join each record's sku: the first of its item ids (in file order) the crosswalk knows."""
    # DESIGN.md §5: the parser's qualifier table (transforms.edi.values), then the source's overrides.
    qualifiers = {**DEFAULT_QUALIFIERS, **dict(spec.qualifiers)}
    cand_rows = []
    for i, r in enumerate(recs):
        ids = r.get("item_ids") or ([{"qualifier": r.get("item_id_qualifier"), "id": r.get("item_id")}] if r.get("item_id") else [])
        for j, it in enumerate(ids):
            id_type = qualifiers.get(str((it or {}).get("qualifier") or "").upper())
            if id_type and it.get("id"):
                cand_rows.append((i, j, id_type, str(it["id"])))
    cands = pl.DataFrame(cand_rows, schema={"_rec": pl.Int64, "_order": pl.Int64, "_id_type": pl.String, "_cid": pl.String}, orient="row")
    tmp = cands.with_columns(pl.lit(df["_file"][0] if df.height else "").alias("_file"), pl.lit("").alias("_locator"), pl.lit("").alias("_raw"))
    mapped, _ = map_skus(tmp, crosswalks, id_col="_cid", type_col="_id_type")
    best = mapped.sort("_rec", "_order").unique("_rec", keep="first").select("_rec", "sku", "units_per_id")
    return df.join(best, on="_rec", how="left", maintain_order="left")


def canonical_from_edi(records: list[dict], uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> FileResult:
    """Map the dicts of `transforms.edi.parse_edi` to canonical records of the source's system.

    Each record keeps all its item ids; the first (in file order) that the crosswalk knows wins.
    Parser errors become quarantine rows with the parser's code. Locations are in the source
    system's codes. A quantity must come to whole eaches (`bad_quantity`); a movement's is a
    magnitude unless it is an adjustment.
    """
    recs = [r for r in records if r.get("kind") in ("position", "in_transit", "movement")]
    rejected = _edi_errors([r for r in records if r.get("kind") == "error"], uri)
    result = FileResult(read=len(records))
    if recs:
        df = _edi_skus(_edi_frame(recs, uri), recs, spec, crosswalks)
        reason = pl.format("item {}: none of the record's item ids is in the sku crosswalk", pl.col("_item").fill_null("(none)"))
        df = reject(df, pl.col("sku").is_null(), "unmapped_sku", reason, rejected)
        df = df.with_columns(
            parse_timestamps(pl.col("_when"), timezone=spec.timezone).alias("_ts"),
            parse_timestamps(pl.col("_expected"), timezone=spec.timezone).alias("expected_at"),
            pl.lit(spec.system).alias("_loc_system"),
        )
        df = _reject_quantities(df, [("_qty_raw", "qty", True)], unit=None, rejected=rejected)
        magnitude = (pl.col("_kind") == "movement") & (pl.col("event_type") != "adjustment").fill_null(True)
        df = _reject_negative(df, "_qty_raw", "qty", signed=~magnitude, rejected=rejected)
        future = pl.col("_kind") == "movement"
        df = _reject_future(df, "_ts", "_when", "date", spec=spec, rejected=rejected, only=future)
        df = _reject_timestamps(df, "_ts", "_when", "date", rejected=rejected, unparsed="the record has no usable date / time")
        expected = timestamp_problem(pl.col("expected_at"), pl.col("_expected"), field="expected date")
        df = reject(df, pl.col("_expected").is_not_null() & expected.is_not_null(), "bad_timestamp", expected, rejected)
        df, rej = apply_uom(df, crosswalks, uom_col="uom")
        rejected += rej
        df = _reject_quantities(df, [("_qty_raw", "qty", True)], unit="uom", rejected=rejected).rename({"_e_qty_raw": "_eaches"})
        lineage = [pl.lit(spec.name).alias("source"), pl.col("_file").alias("file"), pl.col("_locator").alias("locator")]
        result.positions = _edi_positions(df.filter(pl.col("_kind") == "position"), spec, crosswalks, lineage, rejected)
        result.in_transit = _edi_in_transit(df.filter(pl.col("_kind") == "in_transit"), crosswalks, lineage, rejected)
        result.movements = _edi_movements(df.filter(pl.col("_kind") == "movement"), spec, crosswalks, lineage, rejected)
    result.quarantine = _quarantine_table(rejected, spec.name)
    return result


def _edi_positions(pos: pl.DataFrame, spec: SourceSpec, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not pos.height:
        return None
    pos, rej = map_locations(pos, crosswalks, col="c_location", system_col="_loc_system", out="location")
    rejected += rej
    reason = "the position has no warehouse location (N1 WH / SDQ / SCH / LOC)"
    pos = reject(pos, pl.col("location").is_null(), "missing_field", reason, rejected)
    is_avail = (pl.col("qty_type") == "available").fill_null(False)
    pos = pos.with_columns(
        pl.lit(spec.system).alias("system"),
        pl.col("_ts").alias("as_of"),
        pl.when(~is_avail).then(pl.col("_eaches")).alias("on_hand"),
        pl.lit(None, dtype=pl.Int64).alias("reserved"),
        pl.when(is_avail).then(pl.col("_eaches")).alias("available"),
        pl.col("uom").alias("uom_source"),
        pl.lit(None, dtype=pl.Float64).alias("unit_cost"),
        *lineage,
    )
    return _to_arrow(pos, POSITION)


def _edi_in_transit(its: pl.DataFrame, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not its.height:
        return None
    its, rej = map_locations(its, crosswalks, col="c_from", system_col="_loc_system", out="from_location")
    rejected += rej
    its, rej = map_locations(its, crosswalks, col="c_to", system_col="_loc_system", out="to_location")
    rejected += rej
    its = reject(its, pl.col("shipment_id").is_null(), "missing_field", "the shipment has no shipment id (BSN02 / BGM)", rejected)
    its = its.with_columns(pl.col("_eaches").alias("qty"), pl.col("_ts").alias("shipped_at"), *lineage)
    return _to_arrow(its, IN_TRANSIT)


def _edi_movements(mv: pl.DataFrame, spec: SourceSpec, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not mv.height:
        return None
    mv, rej = map_locations(mv, crosswalks, col="c_location", system_col="_loc_system", out="location")
    rejected += rej
    bad = pl.col("location").is_null() | ~pl.col("event_type").is_in(list(EVENT_TYPES))
    mv = reject(mv, bad, "missing_field", "the movement has no location or no known event type", rejected)
    sign = pl.col("event_type").replace_strict(EVENT_SIGN, default=0, return_dtype=pl.Int64)
    rsign = pl.col("event_type").replace_strict(RESERVED_SIGN, default=0, return_dtype=pl.Int64)
    mv = mv.with_columns(
        pl.format("{}#{}", pl.col("_file"), pl.col("_locator")).alias("event_id"),
        pl.lit(spec.system).alias("system"),
        (pl.col("_eaches") * sign).alias("qty"),
        (pl.col("_eaches") * rsign).alias("reserved_delta"),
        pl.col("_ts").alias("occurred_at"),
        pl.lit(None, dtype=pl.String).alias("counterparty_location"),
        *lineage,
    )
    return _to_arrow(mv, MOVEMENT)
