"""Turn bytes (whole or in chunks) into text chunks: by their BOM, else UTF-8, else latin-1.

Partners write EDI in ASCII, UTF-8 (with or without a BOM), a Windows code page, or (a PC
translator's export) UTF-16 with a BOM. Decoding before tokenizing is what makes multi-byte
terminators (`…` is 3 bytes, `Ö` 2) single characters, so the ISA's fixed character positions
hold. A UTF-16 / UTF-32 BOM names the encoding of the whole file (what does not decode becomes
U+FFFD). Otherwise UTF-8 is tried first; from the first chunk that is not valid UTF-8 on, the
rest of the file is read as latin-1, which maps every byte to one character and so never fails
(the tokenizer then sees each byte as written).

Example:
    >>> list(decode_chunks([b"\\xef\\xbb\\xbfISA", b"*\\xc3", b"\\x96"]))
    ['ISA', '*', '\u00d6']
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import BinaryIO

__all__ = ["CHUNK_SIZE", "decode_chunks", "read_chunks"]

# 1 MiB: large enough that per-chunk overhead vanishes next to str.split, small enough that two
# chunks (the buffer plus the next read) keep memory flat for any file size.
CHUNK_SIZE = 1 << 20
_BOM = codecs.BOM_UTF8
# Byte order marks that name another encoding than UTF-8, longest first (UTF-32 LE's starts
# with UTF-16 LE's).
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def read_chunks(fileobj: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield `chunk_size` byte blocks from a binary file object until it is exhausted."""
    while True:
        block = fileobj.read(chunk_size)
        if not block:
            return
        yield block


def _by_bom(blocks: Iterator[bytes]) -> tuple[str | None, Iterator[bytes]]:
    """(the codec a UTF-16 / UTF-32 BOM names, the blocks with the BOM dropped); (None, blocks) if none."""
    first: list[bytes] = []  # the blocks looked at, kept as they came (UTF-8 decoding is per block)
    for block in blocks:
        first.append(block)
        if sum(map(len, first)) >= 4:
            break
    head = b"".join(first)
    for bom, codec in _WIDE_BOMS:
        if head.startswith(bom):
            return codec, chain([head[len(bom):]], blocks)
    return None, chain(first, blocks)


def _decode_wide(codec: str, blocks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(codec)("replace")
    for block in blocks:
        text = decoder.decode(block)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def decode_chunks(blocks: Iterable[bytes]) -> Iterator[str]:
    """Decode byte blocks to text: by a UTF-16 / UTF-32 BOM, else UTF-8 (BOM dropped), latin-1 fallback."""
    codec, blocks = _by_bom(iter(blocks))
    if codec is not None:
        yield from _decode_wide(codec, blocks)
        return
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    fallback = False
    first = True
    started = False
    for block in blocks:
        if first and block:
            first = False
            if block.startswith(_BOM):
                block = block[len(_BOM) :]
            elif len(block) < len(_BOM) and _BOM.startswith(block):
                # a BOM split over tiny blocks: keep it for the decoder, which yields \ufeff
                pass
        if fallback:
            yield block.decode("latin-1")
            continue
        pending, _ = decoder.getstate()
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError:
            fallback = True
            text = (pending + block).decode("latin-1")
        if text:
            if not started:  # a BOM that arrived split over blocks decodes to U+FEFF
                started = True
                text = text.removeprefix("\ufeff")
            yield text
    if not fallback:
        try:
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            tail = decoder.getstate()[0].decode("latin-1")
        if tail:
            yield tail
