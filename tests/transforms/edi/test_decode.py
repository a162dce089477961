"""Bytes to text: by a BOM, else UTF-8, else latin-1 from the first block that is not UTF-8."""

from __future__ import annotations

import codecs
import io

from invrecon.transforms.edi.decode import decode_chunks, read_chunks


def test_decode_bom_utf8_and_latin1_fallback():
    assert list(decode_chunks([b"\xef\xbb\xbfAB", b"\xe2\x80", b"\xa6"])) == ["AB", "\u2026"]
    # not UTF-8 from the second block on: latin-1 for the rest, the first block kept
    assert "".join(decode_chunks([b"A\xc3\x96", b"\x85Z"])) == "A\u00d6\x85Z"


def test_decode_a_bom_split_over_tiny_blocks_and_wide_boms():
    assert "".join(decode_chunks([b"\xef", b"\xbb", b"\xbfISA"])) == "ISA"
    assert "".join(decode_chunks([codecs.BOM_UTF16_LE + "ISA*Ö".encode("utf-16-le")])) == "ISA*Ö"
    assert "".join(decode_chunks([codecs.BOM_UTF32_BE, "UNB".encode("utf-32-be")])) == "UNB"


def test_read_chunks_reads_the_file_in_blocks():
    assert list(read_chunks(io.BytesIO(b"abcdefg"), chunk_size=3)) == [b"abc", b"def", b"g"]
    assert list(read_chunks(io.BytesIO(b""))) == []
