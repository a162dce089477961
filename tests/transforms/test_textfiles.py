"""CSV and JSON Lines read a block at a time: the same rows, lines and rejects whatever the blocks.

The readers hold a block of a file, never the file (issue 11: 10M positions in under 6 GiB), so
every edge a block can cut through is tried here with tiny blocks: a line straddling blocks, a
too-long line across blocks, a multi-byte character, a `\\r\\n` split between blocks, no final
line break. Each result is compared with the same file read as one block.
"""

from __future__ import annotations

import io
import random

import numpy as np
import polars as pl
import pytest

from invrecon.transforms import textfiles
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.readers import tabular
from invrecon.transforms.readers.tabular import read_tabular
from invrecon.transforms.textfiles import Unreadable, iter_line_chunks, read_csv_frames, read_jsonl_frames
from invrecon.transforms.textio import LineBlocks, line_bounds, utf8_stream
from tests.conftest import WORLD
from tests.transforms.hostile import COMMERCE, COMMERCE_JSONL, ERP, codes, collect, erp_lines

BLOCKS = (1, 2, 3, 7, 64)


@pytest.fixture(scope="module")
def crosswalks():
    return load_crosswalks(str(WORLD / "crosswalk/sku.csv"), str(WORLD / "crosswalk/location.csv"))


def _whole_lines(data: bytes, cr: bool) -> list[bytes]:
    """Every physical line of `data` without its break: the reference for `LineBlocks`."""
    if cr:
        starts, ends = line_bounds(data)
        return [data[s:e] for s, e in zip(starts, ends)]
    lines = data.split(b"\n")
    return lines[:-1] if data.endswith(b"\n") else lines if data else []


def test_line_blocks_are_the_files_lines_whatever_the_blocks():
    """Every line comes once, in a block or as overlong (number, size, first bytes), for any block size."""
    rng = random.Random(11)
    pieces = [b"a", b"bc", b"", b"\r", b"\n", b"\r\n", b"x" * 9, b"\xc3\xa9", b"yyyyy"]
    for _ in range(400):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        for cr in (True, False):
            want = _whole_lines(data, cr)
            for block in BLOCKS:
                cut = LineBlocks(max_line_bytes=6, cr=cr, head_bytes=3)
                got: dict[int, bytes] = {}
                for first, chunk in cut.read(io.BytesIO(data), block):
                    assert first == cut.line_no - len(_whole_lines(bytes(chunk), cr)) + 1
                    for k, line in enumerate(_whole_lines(bytes(chunk), cr)):
                        got[first + k] = line
                for n, size in cut.overlong:
                    assert n not in got and size > 6 and cut.heads[n] == want[n - 1][:3]
                    got[n] = want[n - 1][:size]
                assert [got[n] for n in sorted(got)] == want and sorted(got) == list(range(1, len(want) + 1)), (data, cr, block)


def test_a_guessed_stream_decides_once_by_its_first_non_ascii_block():
    """Blocks of ASCII say nothing; a multi-byte character cut by a block is whole; a later bad byte is U+FFFD."""
    text = "id,name\n1,Caf\u00e9 \u20ac\n2,na\u00efve\n"
    for block in BLOCKS:
        s = utf8_stream(io.BytesIO(text.encode()), guess=True)
        assert b"".join(iter(lambda: s.read(block), b"")) == text.encode() and s.encoding == "utf-8"
        s = utf8_stream(io.BytesIO(text.encode("latin-1", errors="replace")), guess=True)
        assert b"".join(iter(lambda: s.read(block), b"")).decode() == text.replace("\u20ac", "?") and s.encoding == "latin-1"
    data = "x\u00e9\n".encode() + b"a" * 100 + b"\xff\n"  # UTF-8 first, a stray byte 100 bytes on
    s = utf8_stream(io.BytesIO(data), guess=True)
    assert b"".join(iter(lambda: s.read(16), b"")).decode() == "x\u00e9\n" + "a" * 100 + "\ufffd\n"
    s = utf8_stream(io.BytesIO(data), guess=True)
    assert s.read() == data.decode("latin-1").encode() and s.encoding == "latin-1"  # read whole: judged on all of it


def _csv_result(path, block: int | None, rows: int = textfiles.BATCH_ROWS):
    """(rows with their line, bad (line, raw, why), unreadable (reason, lines)) of a CSV read in `block`-byte blocks."""
    try:
        frames, bad = read_csv_frames(str(path), rows, block_bytes=block)
    except Unreadable as e:
        return None, [], (e.reason, e.numbers.tolist())
    out, unreadable = [], None
    for df in frames:
        if isinstance(df, Unreadable):
            unreadable = (df.reason, df.numbers.tolist())
        else:
            assert df.height <= rows
            out.append(df)
    df = pl.concat(out) if out else None
    return (df.rows() if df is not None else None), sorted(bad), unreadable


@pytest.mark.parametrize("final", ["", "\n", "\r\n", "\r"])
def test_a_csv_read_in_tiny_blocks_reads_as_one_block(tmp_path, monkeypatch, final):
    """Lines straddling blocks, a too-long line across blocks, a character and a \\r\\n cut by a
    block, blank lines, rows of the wrong width, and the last line with or without a break."""
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 40)
    rows = ["1,Caf\u00e9,3", "", "2,\u20ac\u20ac\u20ac\u20ac,4", "3," + "w" * 60 + ",5", "4,x", "  ", "5,\U0001f600,6", '6,"a,b",7', "7,z,8"]
    breaks = ["\r\n", "\n", "\r", "\r\n", "\n", "\r\n", "\r", "\n"]
    text = "h1,h2,h3\r\n" + "".join(r + b for r, b in zip(rows, breaks)) + rows[-1] + final
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    want = _csv_result(path, None)
    assert [r[-1] for r in want[0]] == [2, 4, 8, 9, 10]  # physical line numbers; line 3 is blank
    assert [(n, why) for n, _, why in want[1]] == [
        (5, "line 5 is 64 bytes long; lines over 40 bytes (MAX_LINE_BYTES) are not read"),
        (6, "line 6: expected 3 fields, found 2"), (7, "line 7: expected 3 fields, found 1"),
    ]
    for block in BLOCKS:
        for per_frame in (1, 2, 1000):
            assert _csv_result(path, block, per_frame) == _csv_result(path, None, per_frame), (block, per_frame)


def test_a_hostile_csv_header_is_found_whatever_the_blocks(tmp_path, monkeypatch):
    """A header over the limit (after blank lines, across blocks) names every other non-blank line."""
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 20)
    path = tmp_path / "f.csv"
    path.write_bytes(b"\r\n\n" + b"h," * 20 + b"h\r\n1,2\n\n" + b"9" * 30 + b"\r3,4")
    for block in (None, *BLOCKS):
        rows, bad, unreadable = _csv_result(path, block)
        assert rows is None and unreadable == ("the header line is 41 bytes long; lines over 20 bytes (MAX_LINE_BYTES) are not read", [4, 6, 7])
    path.write_bytes(b"a,\x00b\n1,2\n" + b"9" * 30 + b"\n3,4\n")
    for block in (None, *BLOCKS):
        assert _csv_result(path, block)[2] == ("the header line holds NUL bytes: this is not a text file in the encoding it was read as", [2, 3, 4])
    path.write_bytes(b"\n\r\n\r\r\n")  # blank lines only: no header, no record
    for block in (None, *BLOCKS):
        frames, bad = read_csv_frames(str(path), block_bytes=block)
        assert [df.columns for df in frames] == [["_line"]] and bad == []


def test_the_erp_extract_reads_the_same_in_tiny_blocks(tmp_path, crosswalks, monkeypatch):
    """Through `read_tabular`: the same positions, quarantine rows and count, frames of any size."""
    lines = erp_lines()
    lines[3] = lines[3].replace("EA", "Caf\u00e9")  # a multi-byte character
    lines[7] = lines[7] + "," + "9" * 200  # the wrong width
    lines[9] = lines[9] + "9" * 300  # over the limit
    path = tmp_path / "erp.csv"
    path.write_bytes(("\r\n".join(lines + [lines[20]]) + "\r\n").encode())  # and an exact repeat
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 256)
    want = collect(read_tabular(str(path), ERP, crosswalks))
    assert codes(want[1]) == {"line 4": "unknown_uom", "line 8": "malformed_row", "line 10": "malformed_row", "line 188": "duplicate_row"}
    for block, per_frame in ((97, 1000), (4096, 7), (1, 50)):
        monkeypatch.setattr(textfiles, "CSV_BLOCK_BYTES", block)
        monkeypatch.setattr(tabular, "BATCH_ROWS", per_frame)
        got = collect(read_tabular(str(path), ERP, crosswalks))
        assert got[2] == want[2] == 187
        assert got[0].sort("locator").equals(want[0].sort("locator"))
        assert got[1].sort("locator").equals(want[1].sort("locator"))


def _jsonl_result(path, block: int | None, rows: int = textfiles.BATCH_ROWS):
    frames, bad = read_jsonl_frames(str(path), rows, block_bytes=block)
    out = list(frames)
    assert len({tuple(df.columns) for df in out}) == 1 and all(df.height <= rows for df in out)
    return pl.concat(out), sorted(bad)


def test_jsonl_frames_have_the_files_keys_in_first_seen_order_whatever_the_blocks(tmp_path, monkeypatch):
    """Keys first seen late are in every frame (null where absent); lines past MAX_COLUMNS, not JSON,
    or over the limit are left out with their reason; a character cut by a block stays whole."""
    monkeypatch.setattr(textfiles, "MAX_COLUMNS", 4)
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 60)
    lines = ['{"b": 1, "a": "x"}', '{"a": "caf\u00e9", "b": null}', "", "[1, 2]", '{"c": {"d": [1, 2]}, "b": true}', "{not json",
             '{"e": 1.5, "a": "' + "z" * 80 + '"}', '{"e": 2, "f": 3}', '{"g": 1}', '{"b": 1e5}']
    path = tmp_path / "a.jsonl"
    path.write_bytes(("\r\n".join(lines)).encode())
    df, bad = _jsonl_result(path, None)
    assert df.columns == ["b", "a", "c", "g", "_line"]  # line 7 is too long; e and f (line 8) would make 5 keys
    assert df.rows() == [("1", "x", None, None, 1), (None, "caf\u00e9", None, None, 2), ("True", None, '{"d": [1, 2]}', None, 5),
                         (None, None, None, "1", 9), ("100000.0", None, None, None, 10)]
    too_long = "line 7 is 100 bytes long; lines over 60 bytes (MAX_LINE_BYTES) are not read"
    assert [(n, why.split(":")[0]) for n, _, why in bad] == [(4, "line 4"), (6, "line 6"), (7, too_long), (8, "line 8")]
    assert "past 4 distinct keys" in bad[3][2] and "not a JSON object" in bad[0][2]
    for block in BLOCKS:
        for per_frame in (1, 3):
            got_df, got_bad = _jsonl_result(path, block, per_frame)
            assert got_df.equals(df) and got_bad == bad, (block, per_frame)


def test_the_commerce_feed_reads_the_same_in_tiny_blocks(tmp_path, crosswalks, monkeypatch):
    lines = COMMERCE_JSONL.read_text().splitlines()
    lines[5] = lines[5].replace('"node"', '"extra": "late key", "node"')
    lines.append(lines[2])  # an exact repeat, in another frame
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    want = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert codes(want[1])[f"line {len(lines)}"] == "duplicate_row"
    monkeypatch.setattr(textfiles, "LINE_BLOCK_BYTES", 100)
    monkeypatch.setattr(tabular, "BATCH_ROWS", 4)
    got = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert got[2] == want[2] == len(lines)
    assert got[0].sort("locator").equals(want[0].sort("locator")) and got[1].sort("locator").equals(want[1].sort("locator"))
    assert np.array_equal(np.sort(got[1]["raw"].to_numpy()), np.sort(want[1]["raw"].to_numpy()))


def _lines_one_by_one(data: bytes) -> list[tuple[int, str]]:
    """The reference: Python's own line iteration, decoded and stripped line by line."""
    import io

    out = []
    for n, line in enumerate(io.BytesIO(data), start=1):
        text = line.decode("utf-8", errors="replace").strip()
        if n == 1:
            text = text.lstrip("\ufeff")
        if text:
            out.append((n, text))
    return out


def test_line_chunks_are_the_lines_python_reads_whatever_the_blocks():
    """BOMs, CRLF, blank and whitespace-only lines, broken UTF-8, no final newline, any block size."""
    import io
    import random

    rng = random.Random(3)
    pieces = [b'{"a": 1}', b"", b"  ", b"\r", b"\x1c", b"\xff\xfe bad", b"\xc3", b"\xc3\xa9t\xc3\xa9", b"\xef\xbb\xbf{x}", b"\t{y}\t",
              "\u2028z\u3000".encode()]
    for _ in range(150):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) + rng.choice([b"", b"\n"])
        data = rng.choice([b"", b"\xef\xbb\xbf"]) + data
        want = _lines_one_by_one(data)
        for chunk, block in ((1, 1), (3, 7), (100, 2), (100, 1 << 20)):
            got = list(iter_line_chunks(io.BytesIO(data), chunk=chunk, block_bytes=block))
            assert [(n, t) for ns, ts in got for n, t in zip(ns.to_list(), ts.to_list())] == want
            assert all(len(ns) == chunk for ns, _ in got[:-1]) and all(0 < len(ns) <= chunk for ns, _ in got)
