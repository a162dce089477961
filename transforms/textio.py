"""Text files as the readers see them: their encoding, and where their lines are.

Partners send CSV and JSON Lines in UTF-8 (with or without a byte order mark), in UTF-16 or
UTF-32 with a BOM (Excel's "Unicode text"), or in a Windows / ISO code page. The readers work
on UTF-8, so:

- `to_utf8`: whole-file bytes to UTF-8 bytes: a BOM names the encoding (and is dropped);
  without one, UTF-8 if the bytes are valid UTF-8, else latin-1, which maps every byte to one
  character and so never fails (as the EDI reader does, `transforms.edi.decode`).
- `utf8_stream`: the same for a binary file read in blocks (the events reader), by its BOM.
- `line_bounds`: where each physical line starts and ends, found by numpy, never one Python
  string per line; a line ends at `\\n`, `\\r\\n` or a lone `\\r`, as pyarrow's CSV reader and
  text editors count them.

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
import io
from typing import BinaryIO

import numpy as np

__all__ = ["BOMS", "line_bounds", "to_utf8", "utf8_stream"]

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
    skip, codec, name = _bom(data[:4])
    if codec is not None and codec != "utf-8":
        return data[skip:].decode(codec, errors="replace").encode("utf-8"), name
    data = data[skip:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8"), "latin-1"
    return data, "utf-8"


class _Prefixed(io.RawIOBase):
    """`head` then the rest of `raw`: a file whose first bytes were read to look at them."""

    def __init__(self, raw: BinaryIO, head: bytes):
        self._raw = raw
        self._head = head

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

    def __init__(self, raw: BinaryIO, encoding: str, head: bytes):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = self._decoder.decode(head).encode("utf-8")
        self._eof = False

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


def utf8_stream(raw: BinaryIO) -> BinaryIO:
    """`raw` as UTF-8 bytes: a UTF-16 / UTF-32 file (by its BOM) is transcoded as it is read.

    Any other file reads as it is (its readers drop a UTF-8 BOM and replace what is not UTF-8).
    """
    head = raw.read(4)
    skip, codec, _ = _bom(head)
    if codec is None or codec == "utf-8":
        return _Prefixed(raw, head)  # type: ignore[return-value]
    return _Transcoder(raw, codec, head[skip:])  # type: ignore[return-value]


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
