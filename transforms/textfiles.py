"""CSV and JSON Lines files as frames of string columns, and text files as chunks of lines.

What the readers of `transforms.sources` (and the stream's replay) see of a text file before
any canonical field is known:

- `read_csv_frames` / `read_csv_frame`: a CSV's rows as frames of all-string columns with
  `_line`, plus the (line, raw, why) of the rows left out;
- `read_jsonl_frame`: JSON Lines objects the same way;
- `iter_line_chunks`: the non-blank lines of a file as (line numbers, texts) polars Series.

A file that cannot be read at all raises `Unreadable`, naming the records it holds where that
can be known. Limits on a file's shape are the module constants MAX_COLUMNS and MAX_LINE_BYTES.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator

import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from invrecon.transforms.canonical import RAW_MAX_BYTES, cut_raw
from invrecon.transforms.textio import line_bounds, to_utf8

__all__ = [
    "BATCH_ROWS",
    "LINE_BLOCK_BYTES",
    "LINE_CHUNK",
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "Unreadable",
    "iter_line_chunks",
    "json_object",
    "read_csv_frame",
    "read_csv_frames",
    "read_jsonl_frame",
    "too_long",
]

# Rows per frame a CSV is parsed into: big enough that per-batch overhead vanishes, small enough
# to spread a large extract over workers (`transforms.sources` batches the same way).
BATCH_ROWS = 200_000
# Lines per chunk of `iter_line_chunks` unless the caller says.
LINE_CHUNK = 100_000

# Limits on the shape of a file, checked before anything big is built (issue 12: a CSV header of
# 10^6 columns took 10.9 GB). An extract has tens of columns, SAP's widest tables a few hundred;
# a record of stock is well under a kilobyte.
# - MAX_COLUMNS: columns of a CSV header or a Parquet schema, distinct keys of a JSON Lines file.
#   A wider CSV / Parquet file is not read (`unreadable_file` for each of its records); a JSON
#   line that would take the file past it is `malformed_row`.
# - MAX_LINE_BYTES: a longer CSV / JSON Lines line is `malformed_row` (`malformed_event` in an
#   events file) without being held in memory; a longer CSV header makes the file unreadable.
MAX_COLUMNS = 2_000
MAX_LINE_BYTES = 1 << 20

class Unreadable(Exception):
    """A file, or the rest of one, that cannot be read: each record it holds is quarantined.

    Attributes:
      reason: why, without the file name.
      numbers: the line (or row) numbers of the records it holds, when they can be known.
      word: "line" or "row", for the locators.
    """

    def __init__(self, reason: str, numbers: np.ndarray | None = None, word: str = "line"):
        super().__init__(reason)
        self.reason, self.numbers, self.word = reason, numbers, word

def too_long(what: str, size: int) -> str:
    return f"{what} is {size} bytes long; lines over {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES) are not read"


def _csv_header(data: bytes, start: int, end: int, rows: np.ndarray) -> list[str]:
    """The column names of a CSV header line; a hostile header makes the file unreadable."""
    if end - start > MAX_LINE_BYTES:
        raise Unreadable(too_long("the header line", int(end - start)), rows)
    if b"\x00" in data[start:end]:
        raise Unreadable("the header line holds NUL bytes: this is not a text file in the encoding it was read as", rows)
    try:
        names = next(csv.reader([data[start:end].decode("utf-8", errors="replace")]), [])
    except csv.Error as e:
        raise Unreadable(f"the header line cannot be read: {e}", rows) from None
    if len(names) > MAX_COLUMNS:
        raise Unreadable(f"the header has {len(names)} columns; files of more than {MAX_COLUMNS} (MAX_COLUMNS) are not read", rows)
    return names


def _kept_lines(data: bytes, starts: np.ndarray, ends: np.ndarray, kept: np.ndarray) -> bytes:
    """The lines numbered `kept` (1-based, ascending), one per line: runs of them are sliced whole."""
    if len(kept) == len(starts):
        return data
    cuts = np.flatnonzero(np.diff(kept) != 1) + 1
    runs = zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(kept)]]))
    view = memoryview(data)
    return b"\n".join(view[starts[kept[a] - 1]:ends[kept[b - 1] - 1]] for a, b in runs)


def _parse_csv(buf: bytes, names: list[str]) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """pyarrow's parse of all-string columns; (row number, text, why) of rows it skipped."""
    invalid: list[tuple[int, str, str]] = []

    def on_invalid(row) -> str:
        if row.number is None:  # pragma: no cover - known with use_threads=False
            raise ValueError("pyarrow did not say which row is invalid")
        invalid.append((row.number, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    table = pacsv.read_csv(
        pa.py_buffer(buf),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=16 << 20),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False,
        ),
    )
    return table, invalid


def read_csv_frame(uri: str) -> tuple[pl.DataFrame, list[tuple[int, str | None, str]]]:
    """`read_csv_frames` as one frame (bad rows sorted by line)."""
    frames, bad = read_csv_frames(uri)
    parts = []
    for df in frames:
        if isinstance(df, Unreadable):
            raise df
        parts.append(df)
    return pl.concat(parts) if len(parts) > 1 else parts[0], sorted(bad, key=lambda b: b[0])


def read_csv_frames(uri: str, rows_per_frame: int = BATCH_ROWS) -> tuple[Iterator[pl.DataFrame | Unreadable], list[tuple[int, str | None, str]]]:
    """Read a CSV as frames of all-string columns with `_line`, `rows_per_frame` lines at a time.

    Returns the frames and the (line, raw, why) of the rows left out; the list fills up as the
    frames are read. The text is decoded by `textio.to_utf8`. Lines are found first
    (`textio.line_bounds`): a line over MAX_LINE_BYTES is left out before parsing, a hostile
    header makes the file `Unreadable` (naming the lines it holds), and pyarrow's row numbers
    map back to lines. Parsing goes a slice of lines at a time, so what the file's text becomes
    is held one frame at a time; a slice pyarrow cannot parse is `Unreadable` for its lines
    and the lines after it.
    """
    with fsspec.open(uri, "rb") as f:
        data, _ = to_utf8(f.read())
    starts, ends = line_bounds(data)
    numbers = np.flatnonzero(ends > starts) + 1  # pyarrow skips blank lines
    if not len(numbers):
        return iter([pl.DataFrame({"_line": pl.Series([], dtype=pl.Int64)})]), []
    rows = numbers[1:]
    names = _csv_header(data, starts[numbers[0] - 1], ends[numbers[0] - 1], rows)
    size = ends[rows - 1] - starts[rows - 1]
    long = size > MAX_LINE_BYTES
    bad: list[tuple[int, str | None, str]] = [
        (int(n), cut_raw(data[starts[n - 1]:starts[n - 1] + RAW_MAX_BYTES], int(k)), too_long(f"line {n}", int(k)))
        for n, k in zip(rows[long], size[long])
    ]
    body = rows[~long]
    if not len(body):  # a header alone (pyarrow refuses one without a line break)
        df = pl.DataFrame({n: pl.Series([], dtype=pl.String) for n in dict.fromkeys(names)})
        return iter([df.with_columns(pl.Series("_line", [], dtype=pl.Int64))]), bad

    def frames() -> Iterator[pl.DataFrame | Unreadable]:
        for at in range(0, len(body), rows_per_frame):
            kept = np.concatenate([numbers[:1], body[at:at + rows_per_frame]])
            try:
                table, invalid = _parse_csv(_kept_lines(data, starts, ends, kept), names)
            except (pa.ArrowException, ValueError) as e:
                yield Unreadable(f"cannot read as CSV: {e}", body[at:])
                return
            bad.extend((int(kept[r - 1]), text, f"line {kept[r - 1]}: {why}") for r, text, why in invalid)
            good = np.delete(kept, [0] + [r - 1 for r, _, _ in invalid])
            if len(good) != table.num_rows:  # pragma: no cover - a disagreement on what a line is
                yield Unreadable(f"{table.num_rows} rows parsed from {len(good)} lines", body[at:])
                return
            df = pl.from_arrow(table)
            assert isinstance(df, pl.DataFrame)
            yield df.with_columns(pl.Series("_line", good, dtype=pl.Int64))

    return frames(), bad


def json_object(text: str) -> tuple[dict | None, str | None]:
    """(object, None) for a line that is one JSON object, else (None, why it is not)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as e:
        return None, f"not valid JSON: {e}"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, None


def read_jsonl_frame(uri: str) -> tuple[pl.DataFrame, list[tuple[int, str | None, str]]]:
    """Read JSON Lines objects as string columns with `_line`; (line, raw, why) of the lines left out."""
    with fsspec.open(uri, "rb") as f:
        data, _ = to_utf8(f.read())
    rows, lines, bad, keys = [], [], [], set()
    overlong: list[tuple[int, int]] = []
    for numbers, texts in iter_line_chunks(io.BytesIO(data), max_line_bytes=MAX_LINE_BYTES, overlong=overlong):
        for n, text in zip(numbers.to_list(), texts.to_list()):
            obj, why = json_object(text)
            new = obj.keys() - keys if obj is not None else set()
            if new and len(keys) + len(new) > MAX_COLUMNS:
                obj, why = None, f"its keys would take the file past {MAX_COLUMNS} distinct keys (MAX_COLUMNS)"
            if obj is None:
                bad.append((n, text, f"line {n}: {why}"))
                continue
            keys |= new
            rows.append({k: None if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in obj.items()})
            lines.append(n)
    bad += [(n, None, too_long(f"line {n}", size)) for n, size in overlong]
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    df = df.with_columns(pl.Series("_line", lines, dtype=pl.Int64)) if rows else pl.DataFrame({"_line": pl.Series([], dtype=pl.Int64)})
    return df, sorted(bad, key=lambda b: b[0])

# What str.strip() strips: Python's whitespace (polars' own set lacks \x1c-\x1f).
_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
# Bytes read at a time by iter_line_chunks: lines are cut a block at a time, by polars.
LINE_BLOCK_BYTES = 1 << 23


def iter_line_chunks(
    f, *, chunk: int = LINE_CHUNK, block_bytes: int = LINE_BLOCK_BYTES,
    max_line_bytes: int | None = None, overlong: list[tuple[int, int]] | None = None,
) -> Iterator[tuple[pl.Series, pl.Series]]:
    r"""(line numbers, stripped texts) of the non-blank lines of a binary JSON Lines file.

    At most `chunk` lines at a time, each pair two polars Series (Int64, String). A line ends
    at `\n`; its text is stripped of whitespace (as `str.strip` does); line 1 loses a UTF-8
    byte order mark; undecodable bytes are replaced, so a line is never lost. The lines are cut
    a block of bytes at a time, never one Python string per line.

    With `max_line_bytes`, a longer line is left out and its (number, size in bytes) appended
    to `overlong`; then memory holds at most a block and that many bytes, however long a line.

    Example:
        >>> import io
        >>> [(n.to_list(), t.to_list()) for n, t in iter_line_chunks(io.BytesIO(b'\xef\xbb\xbf{"a": 1}\r\n\n {"b": 2}'))]
        [([1, 3], ['{"a": 1}', '{"b": 2}'])]
    """
    lines_of = _LineCutter(max_line_bytes, overlong if overlong is not None else [])
    numbers: list[pl.Series] = []
    texts: list[pl.Series] = []
    held = 0
    for first, lines in lines_of.blocks(f, block_bytes):
        keep = lines != ""
        numbers.append(pl.int_range(first, first + len(lines), dtype=pl.Int64, eager=True).filter(keep))
        texts.append(lines.filter(keep))
        held += len(texts[-1])
        if held >= chunk:
            n, t = pl.concat(numbers), pl.concat(texts)
            for at in range(0, held - chunk + 1, chunk):
                yield n.slice(at, chunk), t.slice(at, chunk)
            done = held - held % chunk
            numbers, texts, held = [n.slice(done)], [t.slice(done)], held - done
    if held:
        yield pl.concat(numbers), pl.concat(texts)


@dataclasses.dataclass
class _LineCutter:
    """Cuts a binary file into lines a block at a time, leaving out (and noting) overlong ones."""

    max_line_bytes: int | None
    overlong: list[tuple[int, int]]
    line_no: int = 0  # lines handed out or noted so far
    skipped: int = -1  # bytes of the overlong line being skipped (-1: not inside one)

    def blocks(self, f, block_bytes: int) -> Iterator[tuple[int, pl.Series]]:
        """(number of the first line, the lines' stripped texts, "" for blank or overlong ones)."""
        rest = b""
        while True:
            block = self._skip(f.read(block_bytes))
            if block is None:
                continue
            if block:
                data = rest + block
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    if self.max_line_bytes is not None and len(rest) > self.max_line_bytes:
                        self.skipped, rest = len(rest), b""
                    continue
                data, rest = data[:cut], data[cut + 1:]
            elif rest:
                data, rest = rest, b""
            else:
                return
            yield self.line_no + 1, self._lines(data)

    def _skip(self, block: bytes) -> bytes | None:
        """The block past the end of the overlong line being skipped (None: all of it skipped)."""
        if self.skipped < 0:
            return block
        nl = block.find(b"\n")
        if block and nl < 0:
            self.skipped += len(block)
            return None
        self.line_no += 1
        self.overlong.append((self.line_no, self.skipped + (nl if block else 0)))
        self.skipped = -1
        if not block:
            return b""  # the end of the file ended the line
        return block[nl + 1:] or None

    def _lines(self, data: bytes) -> pl.Series:
        lines = pl.Series("t", [data.decode("utf-8", errors="replace")], dtype=pl.String).str.split("\n").explode()
        if self.max_line_bytes is not None:  # sizes as written (bytes before the \n), not as decoded
            breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            size = np.diff(np.concatenate([[-1], breaks, [len(data)]])) - 1
            long = np.flatnonzero(size > self.max_line_bytes)
            if len(long):
                self.overlong.extend((self.line_no + 1 + int(i), int(size[i])) for i in long)
                lines = lines.scatter(long, pl.Series([""] * len(long), dtype=pl.String))
        lines = lines.str.strip_chars(_WHITESPACE)
        if self.line_no == 0 and lines[0].startswith("\ufeff"):
            lines = lines.scatter(0, lines[0].lstrip("\ufeff"))
        self.line_no += len(lines)
        return lines
