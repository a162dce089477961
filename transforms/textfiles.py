"""CSV and JSON Lines files as frames of string columns, and text files as chunks of lines.

What the readers of `transforms.readers` (and the stream's replay) see of a text file before
any canonical field is known:

- `read_csv_frames` / `read_csv_frame`: a CSV's rows as frames of all-string columns with
  `_line`, plus the (line, raw, why) of the rows left out;
- `read_jsonl_frames`: JSON Lines objects the same way;
- `iter_line_chunks`: the non-blank lines of a file as (line numbers, texts) polars Series.

A file that cannot be read at all raises `Unreadable`, naming the records it holds where that
can be known. Limits on a file's shape are the module constants MAX_COLUMNS and MAX_LINE_BYTES.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator

import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from invrecon.transforms.canonical import RAW_MAX_BYTES, cut_raw
from invrecon.transforms.textio import LineBlocks, line_bounds, utf8_stream

__all__ = [
    "BATCH_ROWS",
    "CSV_BLOCK_BYTES",
    "LINE_BLOCK_BYTES",
    "LINE_CHUNK",
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "Unreadable",
    "iter_line_chunks",
    "joined_texts",
    "json_object",
    "read_csv_frame",
    "read_csv_frames",
    "read_jsonl_frames",
    "too_long",
]

# Rows per frame a CSV is parsed into: big enough that per-batch overhead vanishes, small enough
# to spread a large extract over workers (`transforms.readers` batch the same way).
BATCH_ROWS = 200_000
# Lines per chunk of `iter_line_chunks` unless the caller says.
LINE_CHUNK = 100_000
# Bytes of a CSV read at a time: its lines are found, and parsed, a block at a time.
CSV_BLOCK_BYTES = 16 << 20
# What str.strip() strips: Python's whitespace (polars' own set lacks \x1c-\x1f).
_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
# Bytes read at a time by iter_line_chunks: lines are cut a block at a time, by polars.
LINE_BLOCK_BYTES = 1 << 23

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


def _csv_names(line: bytes) -> list[str]:
    """The column names of a CSV header line; a hostile header raises `Unreadable` (no lines named)."""
    if b"\x00" in line:
        raise Unreadable("the header line holds NUL bytes: this is not a text file in the encoding it was read as")
    try:
        names = next(csv.reader([line.decode("utf-8", errors="replace")]), [])
    except csv.Error as e:
        raise Unreadable(f"the header line cannot be read: {e}") from None
    if len(names) > MAX_COLUMNS:
        raise Unreadable(f"the header has {len(names)} columns; files of more than {MAX_COLUMNS} (MAX_COLUMNS) are not read")
    return names


def _joined_lines(data: memoryview, numbers: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """Lines of a block (ascending numbers), one per line: runs of consecutive ones are sliced whole."""
    cuts = np.flatnonzero(np.diff(numbers) != 1) + 1
    runs = zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(numbers)]]))
    return b"\n".join(data[starts[a]:ends[b - 1]] for a, b in runs)


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


def read_csv_frame(uri: str, *, block_bytes: int | None = None) -> tuple[pl.DataFrame, list[tuple[int, str | None, str]]]:
    """`read_csv_frames` as one frame (bad rows sorted by line)."""
    frames, bad = read_csv_frames(uri, block_bytes=block_bytes)
    parts = []
    for df in frames:
        if isinstance(df, Unreadable):
            raise df
        parts.append(df)
    return pl.concat(parts) if len(parts) > 1 else parts[0], sorted(bad, key=lambda b: b[0])


# One block of a CSV's lines: (the block's bytes, numbers, starts, ends of its lines to read).
_Lines = tuple[memoryview, np.ndarray, np.ndarray, np.ndarray]


class _CsvLines:
    """A CSV file's non-blank lines, found a block at a time (`textio.LineBlocks`, `line_bounds`).

    Iterating gives each block's lines within MAX_LINE_BYTES; longer ones go to `long` as
    (number, size, first bytes) instead, whether they fit a block or were skipped unread.
    """

    def __init__(self, f, block_bytes: int):
        self.cut = LineBlocks(max_line_bytes=MAX_LINE_BYTES, cr=True, head_bytes=RAW_MAX_BYTES)
        self.blocks = self.cut.read(utf8_stream(f, guess=True), block_bytes)
        self.long: list[tuple[int, int, bytes]] = []

    def __iter__(self) -> Iterator[_Lines]:
        for first, data in self.blocks:
            self._take_skipped()
            starts, ends = line_bounds(data)  # type: ignore[arg-type]
            size = ends - starts
            for i in np.flatnonzero(size > MAX_LINE_BYTES):
                self.long.append((first + int(i), int(size[i]), bytes(data[starts[i]:min(ends[i], starts[i] + RAW_MAX_BYTES)])))
            keep = np.flatnonzero((size > 0) & (size <= MAX_LINE_BYTES))  # pyarrow skips blank lines
            yield data, keep + first, starts[keep], ends[keep]
        self._take_skipped()

    def _take_skipped(self) -> None:
        self.long += [(n, size, self.cut.heads.pop(n, b"")) for n, size in self.cut.overlong]
        self.cut.overlong.clear()

    def numbers_left(self, lines: Iterator[_Lines], first: np.ndarray, *, header: int = 0, long: bool = True) -> np.ndarray:
        """`first` and the numbers of every line still to come, sorted: those over the limit too
        (unless not `long`: then they are left in `self.long`), never the header's."""
        parts = [first, *(numbers for _, numbers, _, _ in lines)]
        if long:
            parts.append(np.array([n for n, _, _ in self.long if n != header], np.int64))
        return np.sort(np.concatenate(parts).astype(np.int64))

    def bad_long(self) -> list[tuple[int, str | None, str]]:
        """The (line, raw, why) of the lines over the limit found so far, taken out of `long`."""
        out = [(n, cut_raw(head, size), too_long(f"line {n}", size)) for n, size, head in self.long]
        self.long.clear()
        return out


def _csv_header(text: _CsvLines, lines: Iterator[_Lines]) -> tuple[int, bytes, _Lines] | None:
    """(line number, bytes of the header, the rest of its block); None when every line is blank.

    The header is the first non-blank line; one over MAX_LINE_BYTES, or whose names
    `_csv_names` refuses, makes the file `Unreadable` naming all its other non-blank lines.
    """
    numbers = np.empty(0, np.int64)
    for data, numbers, starts, ends in lines:
        long_first = text.long[0] if text.long else None
        if len(numbers) and (long_first is None or numbers[0] < long_first[0]):
            rest = (data, numbers[1:], starts[1:], ends[1:])
            return int(numbers[0]), bytes(data[starts[0]:ends[0]]), rest
        if long_first is not None:
            break
    if not text.long:
        return None
    n, size, _ = text.long[0]
    raise Unreadable(too_long("the header line", size), text.numbers_left(lines, numbers, header=n))


def read_csv_frames(uri: str, rows_per_frame: int = BATCH_ROWS, *,
                    block_bytes: int | None = None) -> tuple[Iterator[pl.DataFrame | Unreadable], list[tuple[int, str | None, str]]]:
    """Read a CSV as frames of all-string columns with `_line`, `rows_per_frame` rows at a time.

    Returns the frames and the (line, raw, why) of the rows left out; the list fills up as the
    frames are read. The file is read `block_bytes` (default CSV_BLOCK_BYTES) at a time
    (`textio.utf8_stream` decodes it, `textio.LineBlocks` cuts it into whole lines), so memory
    holds a block and a frame, never the file. Lines are found first (`textio.line_bounds`): a line over MAX_LINE_BYTES is left
    out before parsing, a hostile header makes the file `Unreadable` (naming the lines it
    holds), and pyarrow's row numbers map back to lines. A slice of lines pyarrow cannot parse
    is `Unreadable` for its lines and the lines after it.

    Raises:
      OSError: the file cannot be opened.
      Unreadable: the header is hostile.
    """
    f = fsspec.open(uri, "rb").open()
    try:
        text = _CsvLines(f, block_bytes or CSV_BLOCK_BYTES)
        lines = iter(text)
        header = _csv_header(text, lines)
        if header is None:
            f.close()
            return iter([pl.DataFrame({"_line": pl.Series([], dtype=pl.Int64)})]), []
        number, line, rest = header
        try:
            names = _csv_names(line)
        except Unreadable as e:
            raise Unreadable(e.reason, text.numbers_left(lines, rest[1], header=number)) from None
    except BaseException:
        f.close()
        raise
    bad: list[tuple[int, str | None, str]] = []
    return _csv_frames(f, text, itertools.chain([rest], lines), (number, line, names), rows_per_frame, bad), bad


def _csv_frames(f, text: _CsvLines, lines: Iterator[_Lines], header: tuple[int, bytes, list[str]], rows_per_frame: int,
                bad: list[tuple[int, str | None, str]]) -> Iterator[pl.DataFrame | Unreadable]:
    """The frames of `read_csv_frames`: each block's lines parsed a slice at a time, as many as
    the frame being filled has room for (a frame ends up one parse, or two where a block ends);
    `bad` gets the lines over the limit and the rows pyarrow skipped."""
    number, line, names = header
    frames = _Frames(rows_per_frame)
    with f:
        for data, numbers, starts, ends in lines:
            bad += text.bad_long()
            at = 0
            while at < len(numbers):
                part = slice(at, at + frames.room())
                df = _parse_lines(line + b"\n" + _joined_lines(data, numbers[part], starts[part], ends[part]),
                                  names, np.concatenate([[number], numbers[part]]), bad)
                if isinstance(df, Unreadable):
                    yield from frames.flush()
                    left = text.numbers_left(lines, numbers[at:], long=False)
                    bad += text.bad_long()
                    yield Unreadable(df.reason, left)
                    return
                at = part.stop
                yield from frames.add(df)
        bad += text.bad_long()
        yield from frames.flush()
        if not frames.given:  # a header alone (pyarrow refuses one without a line break), or no good row
            df = pl.DataFrame({n: pl.Series([], dtype=pl.String) for n in dict.fromkeys(names)})
            yield df.with_columns(pl.Series("_line", [], dtype=pl.Int64))


def _parse_lines(buf: bytes, names: list[str], numbers: np.ndarray, bad: list) -> pl.DataFrame | Unreadable:
    """The header and lines `numbers` (the header's first) in `buf` as a frame with `_line`."""
    try:
        table, invalid = _parse_csv(buf, names)
    except (pa.ArrowException, ValueError) as e:
        return Unreadable(f"cannot read as CSV: {e}")
    bad.extend((int(numbers[r - 1]), raw, f"line {numbers[r - 1]}: {why}") for r, raw, why in invalid)
    good = np.delete(numbers, [0] + [r - 1 for r, _, _ in invalid])
    if len(good) != table.num_rows:  # pragma: no cover - a disagreement on what a line is
        return Unreadable(f"{table.num_rows} rows parsed from {len(good)} lines")
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df.with_columns(pl.Series("_line", good, dtype=pl.Int64))


class _Frames:
    """Frames of `rows` rows each (the last one shorter), gathered from parses of at most `room()` lines."""

    def __init__(self, rows: int):
        self.rows, self.held, self.given = rows, [], 0

    def room(self) -> int:
        return self.rows - sum(d.height for d in self.held)

    def add(self, df: pl.DataFrame) -> Iterator[pl.DataFrame]:
        if df.height:
            self.held.append(df)
        if not self.room():
            yield from self.flush()

    def flush(self) -> Iterator[pl.DataFrame]:
        if self.held:
            self.given += 1
            yield pl.concat(self.held) if len(self.held) > 1 else self.held[0]
        self.held = []


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


def _string(v) -> str | None:
    """A JSON value as a string column holds it: nested values as JSON text."""
    return None if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))


def read_jsonl_frames(uri: str, rows_per_frame: int = BATCH_ROWS, *,
                      block_bytes: int | None = None) -> tuple[Iterator[pl.DataFrame], list[tuple[int, str | None, str]]]:
    """Read JSON Lines objects as frames of string columns with `_line`, `rows_per_frame` lines at a time.

    Returns the frames and the (line, raw, why) of the lines left out (not JSON, not an object,
    over MAX_LINE_BYTES, bringing keys past MAX_COLUMNS); the list fills up as the frames are
    read. Every frame has the same columns, the file's keys in the order they first appear (a
    key a line lacks is null), so a row reads the same whichever frame it is in: a first pass
    over the file (`_jsonl_keys`) finds them. The file is read `block_bytes` (default
    LINE_BLOCK_BYTES) at a time both times (`iter_line_chunks`), so memory holds a block and a
    frame, never the file.

    Raises:
      OSError: the file cannot be opened.
    """
    block_bytes = block_bytes or LINE_BLOCK_BYTES
    keys, too_many = _jsonl_keys(uri, block_bytes)
    bad: list[tuple[int, str | None, str]] = []
    return _jsonl_frames(uri, keys, too_many, rows_per_frame, block_bytes, bad), bad


def _jsonl_frames(uri: str, keys: list[str], too_many: set[int], rows_per_frame: int, block_bytes: int,
                  bad: list[tuple[int, str | None, str]]) -> Iterator[pl.DataFrame]:
    """The frames of `read_jsonl_frames` (the second pass); one with `_line` alone if no line is kept."""
    schema = {k: pl.String for k in keys}
    overlong: list[tuple[int, int]] = []
    given = False
    with fsspec.open(uri, "rb") as f:
        chunks = iter_line_chunks(utf8_stream(f, guess=True), chunk=rows_per_frame, block_bytes=block_bytes,
                                  max_line_bytes=MAX_LINE_BYTES, overlong=overlong)
        for numbers, texts in chunks:
            rows, lines = [], []
            for n, text in zip(numbers.to_list(), texts.to_list()):
                obj, why = json_object(text) if n not in too_many else (None, _too_many_keys())
                if obj is None:
                    bad.append((n, text, f"line {n}: {why}"))
                    continue
                rows.append({k: _string(v) for k, v in obj.items()})
                lines.append(n)
            bad += [(n, None, too_long(f"line {n}", size)) for n, size in overlong]
            overlong.clear()
            if rows:
                given = True
                yield pl.DataFrame(rows, schema=schema).with_columns(pl.Series("_line", lines, dtype=pl.Int64))
    bad += [(n, None, too_long(f"line {n}", size)) for n, size in overlong]
    if not given:
        yield pl.DataFrame({"_line": pl.Series([], dtype=pl.Int64)})



def _too_many_keys() -> str:
    return f"its keys would take the file past {MAX_COLUMNS} distinct keys (MAX_COLUMNS)"


def _jsonl_keys(uri: str, block_bytes: int) -> tuple[list[str], set[int]]:
    """(the keys of a JSON Lines file's objects in the order they first appear, the lines whose
    keys would take it past MAX_COLUMNS). Lines that are not objects bring no key.

    A chunk of lines polars decodes at once, with no key not seen yet, is done in one call;
    any other goes line by line (`json_object`), as the frames are read.
    """
    keys: dict[str, None] = {}
    too_many: set[int] = set()
    with fsspec.open(uri, "rb") as f:
        for numbers, texts in iter_line_chunks(utf8_stream(f, guess=True), block_bytes=block_bytes, max_line_bytes=MAX_LINE_BYTES):
            try:
                known = pl.read_ndjson(io.BytesIO(joined_texts(texts)), infer_schema_length=None)
                if known.height == len(texts) and keys.keys() >= set(known.columns):
                    continue
            except pl.exceptions.PolarsError:
                pass
            for n, text in zip(numbers.to_list(), texts.to_list()):
                obj, _ = json_object(text)
                new = [k for k in obj if k not in keys] if obj is not None else []
                if len(keys) + len(new) > MAX_COLUMNS:
                    too_many.add(n)
                else:
                    keys.update(dict.fromkeys(new))
    return list(keys), too_many


def joined_texts(texts: pl.Series) -> memoryview:
    """The texts as one newline-separated UTF-8 buffer, read out of Arrow (no Python string)."""
    arr = (texts + "\n").to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    return memoryview(arr.buffers()[2])[offsets[0]:offsets[-1]]




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
    cut = LineBlocks(max_line_bytes=max_line_bytes, overlong=overlong if overlong is not None else [])
    numbers: list[pl.Series] = []
    texts: list[pl.Series] = []
    held = 0
    for first, data in cut.read(f, block_bytes):
        lines = _stripped_lines(data, first, max_line_bytes, cut.overlong)
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


def _stripped_lines(data: memoryview, first: int, max_line_bytes: int | None, overlong: list[tuple[int, int]]) -> pl.Series:
    """The stripped texts of a block of lines (`first` is the first's number), "" for blank or
    overlong ones (noted in `overlong` as (number, size))."""
    if len(data) and data[-1] == 10:
        data = data[:-1]  # the last line's break: it does not start another line
    lines = pl.Series("t", [str(data, "utf-8", errors="replace")], dtype=pl.String).str.split("\n").explode()
    if max_line_bytes is not None:  # sizes as written (bytes before the \n), not as decoded
        breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        size = np.diff(np.concatenate([[-1], breaks, [len(data)]])) - 1
        long = np.flatnonzero(size > max_line_bytes)
        if len(long):
            overlong.extend((first + int(i), int(size[i])) for i in long)
            lines = lines.scatter(long, pl.Series([""] * len(long), dtype=pl.String))
    lines = lines.str.strip_chars(_WHITESPACE)
    if first == 1 and lines[0].startswith("\ufeff"):
        lines = lines.scatter(0, lines[0].lstrip("\ufeff"))
    return lines
