"""Text files as the readers see them: their encoding, and where their lines are.

Partners send CSV and JSON Lines in UTF-8 (with or without a byte order mark), in UTF-16 or
UTF-32 with a BOM (Excel's "Unicode text"), or in a Windows / ISO code page. The readers work
on UTF-8, so:

- `utf8_stream`: a binary file as UTF-8 bytes, read in blocks: a BOM names the encoding (and a
  UTF-16 / UTF-32 file is transcoded as it is read). Without a BOM, the events reader takes the
  bytes as they are (it replaces what is not UTF-8); with `guess=True` (the CSV and JSON Lines
  readers) the file is UTF-8 if its first block holding a non-ASCII byte is valid UTF-8, else
  latin-1, which maps every byte to one character and so never fails (as the EDI reader does,
  `transforms.edi.decode`). The encoding is decided once for the file, from that block (the
  reader's block, 8-16 MiB): a file that is UTF-8 there stays UTF-8 and a bad byte further on
  becomes U+FFFD; a file read whole (`to_utf8`) is judged on all of it.
- `to_utf8`: whole-file bytes to UTF-8 bytes, the same rules on one block.
- `line_bounds`: where each physical line starts and ends, found by numpy, never one Python
  string per line; a line ends at `\\n`, `\\r\\n` or a lone `\\r`, as pyarrow's CSV reader and
  text editors count them.
- `LineBlocks`: a file as blocks of whole lines, read a block at a time, a line too long to hold
  skipped as it is read (noted with its number, size and first bytes).

Example:
    >>> to_utf8("Caf\\u00e9".encode("utf-16"))
    (b'Caf\\xc3\\xa9', 'utf-16')
    >>> to_utf8(b"Caf\\xe9")
    (b'Caf\\xc3\\xa9', 'latin-1')
    >>> [(int(s), int(e)) for s, e in zip(*line_bounds(b"a\\r\\nbc\\rd\\n\\n"))]
    [(0, 1), (3, 5), (6, 7), (8, 8)]
"""

from __future__ import annotations

import codecs
import dataclasses
import io
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

__all__ = ["BOMS", "LineBlocks", "line_bounds", "to_utf8", "utf8_stream"]

# Byte order marks: (BOM, codec, name), longest first (UTF-32 LE's starts with UTF-16 LE's).
BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)
# Bytes scanned for line ends at a time: bounds the scratch memory of `line_bounds`.
_SCAN_BLOCK = 1 << 26


def _bom(head: bytes) -> tuple[int, str | None, str]:
    """(length of the BOM `head` starts with, its codec, its encoding's name); (0, None, "") if none."""
    for bom, codec, name in BOMS:
        if head.startswith(bom):
            return len(bom), codec, name
    return 0, None, ""


def to_utf8(data: bytes) -> tuple[bytes, str]:
    """(the text as UTF-8 bytes without a BOM, the encoding it was read as).

    The encoding is `utf-8` (with or without a BOM), `utf-16` / `utf-32` (by their BOM;
    what does not decode becomes U+FFFD), or `latin-1` (no BOM and not valid UTF-8).
    """
    stream = utf8_stream(io.BytesIO(data), guess=True)
    return stream.read(), stream.encoding  # type: ignore[attr-defined]


class _Prefixed(io.RawIOBase):
    """`head` then the rest of `raw`: a file whose first bytes were read to look at them."""

    def __init__(self, raw: BinaryIO, head: bytes, encoding: str = "utf-8"):
        self._raw = raw
        self._head = head
        self.encoding = encoding

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out = self._head if size < 0 or size >= len(self._head) else self._head[:size]
            self._head = self._head[len(out):]
            return out
        return self._raw.read(size)


class _Transcoder(io.RawIOBase):
    """A binary file of UTF-16 / UTF-32 text read as UTF-8 bytes, a block at a time."""

    def __init__(self, raw: BinaryIO, codec: str, head: bytes, encoding: str):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(codec)(errors="replace")
        self._pending = self._decoder.decode(head).encode("utf-8")
        self._eof = False
        self.encoding = encoding

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._pending) < size):
            block = self._raw.read(1 << 20 if size < 0 else max(size, 4096))
            self._eof = not block
            self._pending += self._decoder.decode(block, final=self._eof).encode("utf-8")
        if size < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out


class _Guessed(io.RawIOBase):
    """A file without a BOM as UTF-8 bytes: UTF-8 or latin-1, decided by its first non-ASCII block.

    Blocks of ASCII pass as they are. The first block with a whole non-ASCII character, or a
    byte that cannot be UTF-8, decides: UTF-8 if it decodes (a character cut by the block's end
    waits for the next one), else latin-1. Then a UTF-8 file's bytes that do not decode become
    U+FFFD; a latin-1 file's are transcoded.
    """

    def __init__(self, raw: BinaryIO, head: bytes):
        self._raw, self._head = raw, head
        self._decoder: codecs.IncrementalDecoder | None = None  # None: undecided (all ASCII so far)
        self._pending = b""  # undecided: the start of a character cut by a block's end
        self.encoding = "utf-8"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while True:  # a block that only starts a character gives nothing yet: that is not the end
            head, self._head = self._head, b""
            block = head + (self._raw.read() if size < 0 else self._raw.read(max(size - len(head), 0)))
            out = self._utf8(block, final=size < 0 or not block)
            if out or not block:
                return out

    def _utf8(self, block: bytes, *, final: bool) -> bytes:
        if self._decoder is not None:
            if block.isascii() and not self._decoder.getstate()[0]:
                return block
            return self._decoder.decode(block, final=final).encode("utf-8")
        data, self._pending = self._pending + block, b""
        if data.isascii():
            return data
        try:  # the file's end must end a character, as `bytes.decode` wants
            text, used = codecs.utf_8_decode(data, "strict", final)
        except UnicodeDecodeError:
            self._decoder, self.encoding = codecs.getincrementaldecoder("latin-1")(), "latin-1"
            return data.decode("latin-1").encode("utf-8")
        if text.isascii():  # no whole character yet: undecided still
            self._pending = data[used:]
        else:
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._decoder.decode(data[used:])
        return text.encode("utf-8")


def utf8_stream(raw: BinaryIO, *, guess: bool = False) -> BinaryIO:
    """`raw` as UTF-8 bytes: a UTF-16 / UTF-32 file (by its BOM) is transcoded as it is read.

    Without `guess`, any other file reads as it is (its readers drop a UTF-8 BOM and replace
    what is not UTF-8). With `guess`, a UTF-8 BOM is dropped and a file without a BOM is UTF-8
    or latin-1, by its first block that is not ASCII (see the module docstring). The stream's
    `encoding` says how it was read ("utf-8", "latin-1", "utf-16", "utf-32").
    """
    head = raw.read(4)
    skip, codec, name = _bom(head)
    if codec == "utf-8" and guess:
        return _Guessed(raw, head[skip:])  # type: ignore[return-value]
    if codec is None:
        return _Guessed(raw, head) if guess else _Prefixed(raw, head)  # type: ignore[return-value]
    if codec == "utf-8":
        return _Prefixed(raw, head)  # type: ignore[return-value]
    return _Transcoder(raw, codec, head[skip:], name)  # type: ignore[return-value]


def line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every physical line of `data`, as int64 byte offsets.

    `ends` excludes the line break. A final line break does not start another (empty) line;
    blank lines are there, with start == end.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    if not len(arr):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    nl_parts, cr_parts = [], []
    for off in range(0, len(arr), _SCAN_BLOCK):
        part = arr[off : off + _SCAN_BLOCK]
        nl_parts.append(np.flatnonzero(part == 10) + off)
        cr_parts.append(np.flatnonzero(part == 13) + off)
    breaks = np.concatenate(nl_parts).astype(np.int64)
    cr = np.concatenate(cr_parts).astype(np.int64)
    if len(cr):  # a \r right before a \n belongs to that break; any other \r is a break itself
        lone = cr[arr[np.minimum(cr + 1, len(arr) - 1)] != 10]
        if len(lone):
            breaks = np.sort(np.concatenate([breaks, lone]))
    starts = np.concatenate([np.zeros(1, np.int64), breaks + 1])
    ends = np.concatenate([breaks, np.array([len(arr)], np.int64)])
    if len(cr):
        crlf = (arr[breaks] == 10) & (breaks > 0) & (arr[np.maximum(breaks - 1, 0)] == 13)
        ends[:-1] -= crlf.astype(np.int64)
    if starts[-1] == len(arr):
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


@dataclasses.dataclass
class LineBlocks:
    r"""Cut a binary text file into blocks of whole lines, never holding a line over a limit.

    `read(f, block_bytes)` yields (number of the block's first line, the block): whole lines
    with their breaks, the file's last line without one if it has none. Lines are numbered
    from 1 across blocks. A line longer than `max_line_bytes` (its bytes before the break) that
    does not fit a block is skipped as it is read: it is noted in `overlong` as (number, size)
    and its first `head_bytes` bytes in `heads`, so memory holds at most a block and that many
    bytes. A long line that does fit a block comes in it (the reader checks sizes itself).

    Args:
      max_line_bytes: None for no limit.
      cr: a lone `
` ends a line too and `
` is one break (CSV, as `line_bounds` counts);
        else only `
` ends a line and a `
` before it is part of the line (JSON Lines).
      head_bytes: first bytes of a skipped line kept in `heads` (for a quarantine row's raw).

    Example:
        >>> import io
        >>> cut = LineBlocks(max_line_bytes=4, cr=True)  # blocks of 3 bytes cut the \r\n: still one break
        >>> [(n, bytes(b)) for n, b in cut.read(io.BytesIO(b"ab\r\nlong line\rc\r"), 3)], cut.overlong
        ([(1, b'ab\r'), (3, b'c\r')], [(2, 9)])
    """

    max_line_bytes: int | None = None
    cr: bool = False
    head_bytes: int = 0
    overlong: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    heads: dict[int, bytes] = dataclasses.field(default_factory=dict)
    line_no: int = 0  # lines handed out or noted so far
    _skipped: int = -1  # bytes of the overlong line being skipped (-1: not inside one)
    _head: bytes = b""
    _drop_lf: bool = False  # a skipped line ended at a \r that ended a block: a \n next is its break

    def read(self, f: BinaryIO, block_bytes: int) -> Iterator[tuple[int, memoryview]]:
        """(number of the first line, the lines' bytes) a block at a time; see the class."""
        rest = b""
        while True:
            block = f.read(block_bytes)
            if self._drop_lf and block:
                self._drop_lf, block = False, block[1:] if block[:1] == b"\n" else block
                if not block:
                    continue
            if self._skipped >= 0:
                block = self._skip(block)
                if block is None:
                    continue
            if not block:  # the end of the file
                if rest:
                    yield self._counted(rest, len(rest))
                return
            data = rest + block if rest else block
            cut = self._last_break(data)
            if cut < 0:
                rest = data
                if self.max_line_bytes is not None and len(rest) > self.max_line_bytes:
                    self._begin_skip(rest)
                    rest = b""
                continue
            rest = data[cut + 1:]
            yield self._counted(data, cut + 1)

    def _counted(self, data: bytes, end: int) -> tuple[int, memoryview]:
        breaks = data.count(b"\n", 0, end)
        if self.cr and data.find(b"\r", 0, end) >= 0:  # lone \r breaks too (counted by numpy: bytes.count of "\r\n" is slow)
            arr = np.frombuffer(data, dtype=np.uint8, count=end)
            cr = arr == 13
            breaks += int(np.count_nonzero(cr)) - int(np.count_nonzero(cr[:-1] & (arr[1:] == 10)))
        ended = data[end - 1] == 10 or (self.cr and data[end - 1] == 13)
        first = self.line_no + 1
        self.line_no += breaks + (0 if ended else 1)
        return first, memoryview(data)[:end]

    def _last_break(self, data: bytes) -> int:
        """Where the block's last whole line ends; a \r there may be half of a \r\n: a \n that
        starts the next block is then dropped (it belongs to the break)."""
        if not self.cr:
            return data.rfind(b"\n")
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        self._drop_lf = cut == len(data) - 1 and data[cut] == 13
        return cut

    def _first_break(self, data: bytes) -> int:
        nl = data.find(b"\n")
        if not self.cr:
            return nl
        cr = data.find(b"\r")
        return cr if nl < 0 or 0 <= cr < nl else nl

    def _note(self, size: int, head: bytes) -> None:
        self.line_no += 1
        self.overlong.append((self.line_no, size))
        if self.head_bytes:
            self.heads[self.line_no] = head[:self.head_bytes]

    def _begin_skip(self, rest: bytes) -> None:
        """`rest` starts a line over the limit and holds no break."""
        self._skipped, self._head = len(rest), rest[:self.head_bytes]

    def _skip(self, block: bytes) -> bytes | None:
        """The block past the end of the overlong line being skipped (None: all of it skipped)."""
        at = self._first_break(block)
        if len(self._head) < self.head_bytes:
            self._head += block[:min(len(block) if at < 0 else at, self.head_bytes - len(self._head))]
        if block and at < 0:
            self._skipped += len(block)
            return None
        size, self._skipped = self._skipped + max(at, 0), -1
        self._note(size, self._head)
        if not block:
            return b""  # the end of the file ended the line
        after = at + 1
        if self.cr and block[at] == 13:  # \r: a \n right after it is part of the break
            if after == len(block):
                self._drop_lf = True
            elif block[after] == 10:
                after += 1
        return block[after:] or None
