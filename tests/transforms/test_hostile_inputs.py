"""Hostile and careless inputs (issue 12): one bad value rejects its row, never its file; every
split of kept from rejected is total; hostile shapes are refused early, with a reason.

Each bad input is generated here from the committed world's good files (`tests/transforms/hostile.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pathlib

import hypothesis
import hypothesis.strategies as st
import polars as pl
import pytest

from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.edi import parse_edi
from invrecon.transforms.readers.edi import canonical_from_edi
from invrecon.transforms.readers.events import read_events
from invrecon.transforms.readers.tabular import read_tabular
from tests.conftest import WORLD
from tests.transforms.hostile import (
    COMMERCE,
    COMMERCE_JSONL,
    EDI,
    EDI_846,
    ERP,
    ERP_CSV,
    EVENTS,
    EVENTS_JSONL,
    STORE,
    STORE_PARQUET,
    codes,
    collect,
    erp_lines,
    good_event_lines,
)


@pytest.fixture(scope="module")
def crosswalks():
    return load_crosswalks(str(WORLD / "crosswalk/sku.csv"), str(WORLD / "crosswalk/location.csv"))


def _edi(text: str, crosswalks):
    return collect([canonical_from_edi(list(parse_edi(text.encode(), file="x.edi")), "x.edi", EDI, crosswalks)])


# -- every split is total ------------------------------------------------------------------------


def test_edi_negative_position_is_kept_when_the_file_also_has_a_fractional_quantity(crosswalks):
    """A null in the filter (position: no event type) dropped the negative line from both sides."""
    text = EDI_846.read_text().replace("QTY*17*81*EA", "QTY*17*-5*EA").replace("QTY*17*210*EA", "QTY*17*2.5*EA")
    kept, q, read = _edi(text, crosswalks)
    assert read == 39 and kept.height == 38
    assert list(codes(q).values()) == ["bad_quantity"]


# -- one bad value rejects its row, never its file -----------------------------------------------


def _erp_with(tmp_path, changes: dict[int, str]) -> str:
    """The ERP extract with data row i (1-based) replaced; returns its path."""
    lines = erp_lines()
    for i, row in changes.items():
        lines[i] = row
    path = tmp_path / "erp.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _erp_row(row: int, **fields: str) -> str:
    """Data row `row` of the ERP extract with some of its columns changed."""
    header, lines = erp_lines()[0].split(","), erp_lines()
    values = dict(zip(header, lines[row].split(",")))
    values.update(fields)
    return ",".join(values[h] for h in header)


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e400", "inf", "NaN", "4611686018427387904"])
def test_a_huge_or_non_numeric_erp_quantity_rejects_its_row_only(tmp_path, crosswalks, value):
    kept, q, read = collect(read_tabular(_erp_with(tmp_path, {5: _erp_row(5, LABST=value)}), ERP, crosswalks))
    assert read == 186 and kept.height == 185
    assert codes(q) == {"line 6": "bad_quantity"}
    assert q["reason"][0].startswith(f"field LABST (on_hand): {value} is ")  # the column as the file names it


def test_a_huge_jsonl_quantity_rejects_its_row_only(tmp_path, crosswalks):
    lines = COMMERCE_JSONL.read_text().splitlines()[:-1]
    lines[3] = lines[3].replace('"available_to_sell": 300', '"available_to_sell": 1e308')
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 40 and kept.height == 39 and codes(q) == {"line 4": "bad_quantity"}
    assert "out of range" in q["reason"][0]


def test_a_huge_event_quantity_rejects_its_event_only(tmp_path, crosswalks):
    lines = good_event_lines()[:20]
    lines[2] = lines[2].replace('"qty": 2,', '"qty": 1e308,')
    assert '"qty": 1e308' in lines[2]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_events(str(path), EVENTS, crosswalks))
    assert read == 20 and kept.height == 19 and codes(q) == {"line 3": "bad_quantity"}


@pytest.mark.parametrize(
    "dtype, value",
    [(pl.String, "abc"), (pl.Float64, 1e308), (pl.Float64, float("nan")), (pl.Float64, float("inf")), (pl.Int64, 2**62), (pl.Float64, 2.5)],
)
def test_a_bad_parquet_quantity_rejects_its_row_only(tmp_path, crosswalks, dtype, value):
    df = pl.read_parquet(STORE_PARQUET).head(20).with_columns(pl.col("on_hand_qty").cast(dtype))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(value, dtype=dtype)).otherwise(pl.col("on_hand_qty")).alias("on_hand_qty"))
    path = tmp_path / "s.parquet"
    df.write_parquet(path)
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == 20 and kept.height == 19 and codes(q) == {"row 4": "bad_quantity"}


# -- quantities are judged in eaches -------------------------------------------------------------


@pytest.mark.parametrize(
    "qty, uom, eaches",
    [("12.5", "DZ", 150), ("0.25", "DZ", 3), ("1.5", "CS", 36), ("12.50", "EA", None), ("12.3", "DZ", None), ("0.1", "CS", None)],
)
def test_erp_quantities_are_judged_after_conversion_to_eaches(tmp_path, crosswalks, qty, uom, eaches):
    # row 1: material 10000000 (SKU000000, case pack 24)
    path = _erp_with(tmp_path, {1: _erp_row(1, LABST=qty, MEINS=uom, RESERVED="")})
    results = list(read_tabular(path, ERP, crosswalks))
    kept, q, _ = collect(results)
    positions = pl.concat([pl.from_arrow(r.positions) for r in results if r.positions is not None])
    if eaches is None:
        assert codes(q) == {"line 2": "bad_quantity"} and "not a whole number" in q["reason"][0]
    else:
        assert q.height == 0 and positions.filter(pl.col("locator") == "line 2")["on_hand"].to_list() == [eaches]


# -- dates: beyond what anything downstream holds, or too far in the future -----------------------

CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC)  # 2026-11-30 23:59:59.999 Chicago


def test_an_edi_date_that_converts_to_year_10000_is_a_bad_timestamp(crosswalks):
    """BIA 9999-12-31 23:30 Chicago is 10000-01-01 UTC: pandas (and so Great Expectations) cannot hold it."""
    text = EDI_846.read_text().replace("BIA*00*MM*INV2026113000*20261130*2000~", "BIA*00*MM*INV2026113000*99991231*2330~")
    kept, q, read = _edi(text, crosswalks)
    assert kept.height == 0 and set(codes(q).values()) == {"bad_timestamp"} and q.height == read == 39
    assert "9999-12-31T23:30:00 is outside the supported range" in q["reason"][0]


@pytest.mark.parametrize("as_of", ["9999-12-31T23:00:00", "1066-10-14T09:00:00"])
def test_an_erp_as_of_outside_the_supported_range_is_a_bad_timestamp(tmp_path, crosswalks, as_of):
    kept, q, read = collect(read_tabular(_erp_with(tmp_path, {3: _erp_row(3, SNAPSHOT_TS=as_of)}), ERP, crosswalks))
    assert kept.height == read - 1 and codes(q) == {"line 4": "bad_timestamp"}


def _events_at(tmp_path, when: dict[int, str]) -> str:
    lines = good_event_lines()[:20]
    for i, ts in when.items():
        ev = json.loads(lines[i])
        ev["occurred_at"] = ts
        lines[i] = json.dumps(ev)
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_events_beyond_the_skew_past_the_cutoff_are_future_events(tmp_path, crosswalks):
    path = _events_at(tmp_path, {1: "9999-12-31T00:00:00Z", 2: "2026-12-03T05:00:00Z", 3: "2026-12-03T07:00:00Z"})
    spec = dataclasses.replace(EVENTS, cutoff=CUTOFF, future_event_skew_hours=48)
    kept, q, read = collect(read_events(path, spec, crosswalks))
    assert read == 20 and codes(q) == {"line 2": "future_event", "line 4": "future_event"}  # line 3: 47 h after
    assert q.sort("locator")["reason"][0] == (
        "field occurred_at: 9999-12-31T00:00:00Z is more than 48 h after the run's cut-off 2026-12-01T05:59:59.999Z"
    )
    kept, q, _ = collect(read_events(path, dataclasses.replace(spec, future_event_skew_hours=1), crosswalks))
    assert codes(q) == {"line 2": "future_event", "line 3": "future_event", "line 4": "future_event"}


def test_without_a_cutoff_a_year_9999_event_is_still_a_bad_timestamp(tmp_path, crosswalks):
    kept, q, read = collect(read_events(_events_at(tmp_path, {1: "9999-12-31T00:00:00Z"}), EVENTS, crosswalks))
    assert read == 20 and codes(q) == {"line 2": "bad_timestamp"}


def test_edi_movements_beyond_the_skew_are_future_events(crosswalks):
    text = (WORLD.parents[1] / "tests/edi_fixtures/947-adjustments.edi").read_text()
    text = text.replace("*91*E1~", "*92*WH-01~").replace("UK*10036000291459~", "UK*10070000000000~")
    records = list(parse_edi(text.encode(), file="x.edi"))
    spec = dataclasses.replace(EDI, cutoff=dt.datetime(2026, 3, 7, 6, tzinfo=dt.UTC))
    kept, q, _ = collect([canonical_from_edi(records, "x.edi", spec, crosswalks)])
    assert kept.height == 1 and "future_event" not in set(q["reason_code"])
    future = list(parse_edi(text.replace("W15*20260306*", "W15*21990101*").encode(), file="x.edi"))
    kept, q, _ = collect([canonical_from_edi(future, "x.edi", spec, crosswalks)])
    assert kept.height == 0 and codes(q)["segment 8 (ISA 000000107 / GS 107 / ST 0001)"] == "future_event"


# -- JSON nested deeper than any parser's stack ---------------------------------------------------

DEEP = 200_000


@pytest.mark.parametrize("deep", ["[" * DEEP + "]" * DEEP, '{"":' * DEEP + "1" + "}" * DEEP])  # both under MAX_LINE_BYTES
@pytest.mark.parametrize("read, spec, good_lines, code", [
    (read_tabular, COMMERCE, lambda: COMMERCE_JSONL.read_text().splitlines(), "malformed_row"),
    (read_events, EVENTS, good_event_lines, "malformed_event"),
], ids=["tabular", "events"])
def test_a_json_line_nested_200k_deep_rejects_its_line_only(tmp_path, crosswalks, deep, read, spec, good_lines, code):
    lines = good_lines()[:10]
    lines[4] = deep
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read_count = collect(read(str(path), spec, crosswalks))
    assert read_count == 10 and kept.height == 9 and codes(q) == {"line 5": code}
    assert "nested too deeply" in q["reason"][0]


# -- hostile shapes: limits -----------------------------------------------------------------------


def test_line_chunks_leave_out_overlong_lines_whatever_the_blocks():
    """The lines Python reads, less those over the limit (noted with their size), for any block size."""
    import io
    import random

    from invrecon.transforms.textfiles import iter_line_chunks

    rng = random.Random(5)
    pieces = [b'{"a": 1}', b"", b"  ", b"\r", b"\xff\xfe bad", b"\xc3\xa9t\xc3\xa9", b"x" * 11, b" " * 30, b"\xef\xbb\xbf{x}", b"y" * 10, b"z" * 40]
    for _ in range(200):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) + rng.choice([b"", b"\n"])
        data = rng.choice([b"", b"\xef\xbb\xbf"]) + data
        want, want_long = [], []
        for n, line in enumerate(io.BytesIO(data), start=1):
            raw = line.removesuffix(b"\n")
            if len(raw) > 10:
                want_long.append((n, len(raw)))
                continue
            text = raw.decode("utf-8", errors="replace").strip()
            text = text.lstrip("\ufeff") if n == 1 else text
            if text:
                want.append((n, text))
        for chunk, block in ((1, 1), (3, 7), (100, 2), (100, 1 << 20)):
            overlong: list[tuple[int, int]] = []
            got = list(iter_line_chunks(io.BytesIO(data), chunk=chunk, block_bytes=block, max_line_bytes=10, overlong=overlong))
            assert [(n, t) for ns, ts in got for n, t in zip(ns.to_list(), ts.to_list())] == want
            assert sorted(overlong) == want_long, (data, block)


# -- encodings -------------------------------------------------------------------------------------


def _erp_as(tmp_path, encoding: str, *, desc: str = "Caf\u00e9 cr\u00e8me") -> str:
    """The ERP extract (good rows) with a free-text column, written in `encoding`."""
    lines = erp_lines()
    text = "\n".join([lines[0] + ",DESC"] + [f"{row},{desc}" for row in lines[1:]]) + "\n"
    path = tmp_path / f"erp-{encoding}.csv"
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-16-be-bom", "utf-32", "utf-8-sig"])
def test_an_erp_extract_in_another_encoding_is_read_whole(tmp_path, crosswalks, encoding):
    if encoding == "utf-16-be-bom":
        path = tmp_path / "erp.csv"
        path.write_bytes(b"\xfe\xff" + pathlib.Path(_erp_as(tmp_path, "utf-8")).read_text().encode("utf-16-be"))
        path = str(path)
    else:
        path = _erp_as(tmp_path, encoding)
    kept, q, read = collect(read_tabular(path, ERP, crosswalks))
    assert read == 186 and kept.height == 186 and q.height == 0


def test_a_latin1_row_keeps_its_text(tmp_path, crosswalks):
    lines = erp_lines()
    lines[1] = _erp_row(1, LABST="12x") + ",Caf\u00e9"
    lines[0] += ",DESC"
    lines[2:] = [row + ",ok" for row in lines[2:]]
    path = tmp_path / "erp.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 186 and codes(q) == {"line 2": "bad_quantity"} and "Caf\u00e9" in q["raw"][0]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_jsonl_events_and_edi_in_another_encoding_read_as_in_utf8(tmp_path, crosswalks, encoding):
    for src, spec in ((COMMERCE_JSONL, COMMERCE), (EVENTS_JSONL, EVENTS)):
        want = collect((read_tabular if spec is COMMERCE else read_events)(str(src), spec, crosswalks))
        path = tmp_path / src.name
        path.write_bytes(src.read_text().encode(encoding))
        got = collect((read_tabular if spec is COMMERCE else read_events)(str(path), spec, crosswalks))
        assert got[2] == want[2] and got[0]["locator"].to_list() == want[0]["locator"].to_list()
        assert codes(got[1]) == codes(want[1])
    want = list(parse_edi(EDI_846.read_bytes(), file="x.edi"))
    assert list(parse_edi(EDI_846.read_text().encode(encoding), file="x.edi")) == want


def _peak_rss_mb(code: str) -> float:
    """Peak resident memory (MB) of a fresh interpreter running `code` (after its imports)."""
    import subprocess
    import sys

    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report this
    # (big) test process's peak.
    peak = "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    prog = "import polars, pyarrow, numpy\n" + code + "\n" + peak
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True, cwd=str(WORLD.parents[1]))
    return int(out.stdout.split()[-1]) / 1024


_READ_ONE = """
from tests.transforms.hostile import {spec}
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.readers.events import read_events
from invrecon.transforms.readers.tabular import read_tabular
cw = load_crosswalks("fixtures/world/crosswalk/sku.csv", "fixtures/world/crosswalk/location.csv")
results = list({reader}({path!r}, {spec}, cw))
"""


@pytest.mark.parametrize("columns", [100_000, 1_000_000])
def test_a_csv_header_of_a_million_columns_is_refused_early_and_each_line_counted(tmp_path, crosswalks, columns):
    header = ",".join(f"c{i}" for i in range(columns)) if columns > 100_000 else ",".join("c" for _ in range(columns))
    why = f"the header has {columns} columns" if len(header) <= 1 << 20 else f"the header line is {len(header)} bytes long"
    rows = erp_lines()[1:6]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join([header, *rows, "", rows[0]]) + "\n")  # a blank line holds no record
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 6 and kept.height == 0 and set(q["reason_code"]) == {"unreadable_file"}
    assert q["locator"].to_list() == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 8"]
    assert f"{path}: file unreadable: {why}" in q["reason"][0]
    assert _peak_rss_mb(_READ_ONE.format(spec="ERP", reader="read_tabular", path=str(path))) < 600


def test_a_long_csv_line_is_refused_alone_with_its_raw_capped(tmp_path, crosswalks):
    lines = erp_lines()
    lines[4] = _erp_row(4, VERPR="9" * (3 << 20))  # 3 MiB
    lines[6] = lines[6] + ",x" * 50_000  # the wrong number of fields, 100 KB
    path = tmp_path / "erp.csv"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 186 and kept.height == 184 and codes(q) == {"line 5": "malformed_row", "line 7": "malformed_row"}
    q = q.sort("locator")
    assert q["reason"][0] == f"line 5 is {len(lines[4])} bytes long; lines over 1048576 bytes (MAX_LINE_BYTES) are not read"
    assert q["reason"][1] == "line 7: expected 7 fields, found 50007"
    for raw in q["raw"]:
        assert len(raw.encode()) <= 4096 and raw.startswith("1000000") and raw.endswith(" bytes in all]")
    assert _peak_rss_mb(_READ_ONE.format(spec="ERP", reader="read_tabular", path=str(path))) < 600


def test_long_json_lines_are_refused_alone_without_being_held(tmp_path, crosswalks):
    lines = COMMERCE_JSONL.read_text().splitlines()[:10]
    lines[2] = '{"gtin": "' + "7" * (5 << 20) + '"}'
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 10 and kept.height == 9 and codes(q) == {"line 3": "malformed_row"}

    events = good_event_lines()[:10]
    events[7] = '{"event_id": "' + "e" * (200 << 20) + '"}'  # 200 MiB: read in blocks, never held
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(events) + "\n")
    kept, q, read = collect(read_events(str(path), EVENTS, crosswalks))
    assert read == 10 and kept.height == 9 and codes(q) == {"line 8": "malformed_event"}
    assert q["reason"][0].startswith("line 8 is 209715216 bytes long")
    assert _peak_rss_mb(_READ_ONE.format(spec="EVENTS", reader="read_events", path=str(path))) < 400


def test_a_jsonl_file_with_too_many_distinct_keys_refuses_the_lines_that_bring_them(tmp_path, crosswalks):
    lines = COMMERCE_JSONL.read_text().splitlines()[:5]
    lines += ["{" + ", ".join(f'"k{j}_{i}": 1' for j in range(1000)) + "}" for i in range(3)]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 8 and kept.height == 5 and codes(q)["line 8"] == "malformed_row"  # lines 6, 7: missing fields
    assert "2000 distinct keys (MAX_COLUMNS)" in q.filter(pl.col("locator") == "line 8")["reason"][0]


def test_a_parquet_file_of_too_many_columns_counts_each_row_unreadable(tmp_path, crosswalks):
    df = pl.read_parquet(STORE_PARQUET).head(7)
    df = df.with_columns([pl.lit(1).alias(f"x{i}") for i in range(2500)])
    path = tmp_path / "wide.parquet"
    df.write_parquet(path)
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == 7 and set(q["reason_code"]) == {"unreadable_file"} and q["locator"][-1] == "row 7"
    assert "the file has 2505 columns" in q["reason"][0]


@pytest.mark.parametrize("group", [0, 2])
def test_a_parquet_row_group_that_cannot_be_decoded_counts_its_rows_and_the_rest_is_read(tmp_path, crosswalks, group):
    df = pl.concat([pl.read_parquet(STORE_PARQUET)] * 4).with_row_index("seq")  # no two rows alike
    path = tmp_path / "s.parquet"
    df.write_parquet(path, row_group_size=30, compression="uncompressed", statistics=False)
    data = bytearray(path.read_bytes())
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(group).column(1)  # that row group's store_nbr column chunk
    start = col.dictionary_page_offset or col.data_page_offset
    data[start:start + col.total_compressed_size] = b"\xff" * col.total_compressed_size
    path.write_bytes(bytes(data))
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == df.height and kept.height > 60  # the other row groups are read
    bad = q.filter(pl.col("reason_code") == "unreadable_file")
    first = 30 * group + 1
    assert bad["locator"].to_list() == [f"row {n}" for n in range(first, first + 30)]
    assert f"row group {group + 1} (rows {first}-{first + 29}) cannot be decoded" in bad["reason"][0]

    path.write_bytes(b"PAR1 not really")
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == 1 and q.select("locator", "reason_code").rows() == [("file", "unreadable_file")]


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    lines=st.lists(
        st.one_of(
            st.lists(st.sampled_from(["a", "b c", '"x,y"', '"q""q"', "", " ", "7", "\u00e9"]), min_size=1, max_size=4).map(",".join),
            st.just(""), st.just("   "),
        ),
        max_size=12,
    ),
    breaks=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=12, max_size=12),
    final=st.booleans(),
)
def test_csv_line_numbers_are_the_physical_lines_whatever_the_breaks(tmp_path_factory, lines, breaks, final):
    """Good rows keep their line's values and number; rows of the wrong width name their line."""
    import csv as pycsv

    from invrecon.transforms.textfiles import read_csv_frame

    header = ["h1", "h2", "h3"]
    text = ",".join(header) + breaks[-1] + "".join(line + brk for line, brk in zip(lines, breaks))
    text = text if final else text.rstrip("\r\n")
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(text.encode())
    want_good, want_bad = [], []
    for n, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[1:], start=2):
        if line == "":
            continue
        fields = next(pycsv.reader([line]))
        (want_good if len(fields) == 3 else want_bad).append((n, *fields) if len(fields) == 3 else n)
    for block in (None, 1, 5):  # read whole, and in blocks that cut lines and \r\n breaks anywhere
        df, bad = read_csv_frame(str(path), block_bytes=block)
        got_good = [(r[-1], *r[:-1]) for r in df.select(*header, "_line").rows()] if df.height else []
        assert got_good == want_good
        assert [n for n, _, _ in bad] == want_bad


def test_a_header_only_file_lacking_a_mapped_column_is_one_missing_column_record(tmp_path, crosswalks):
    path = tmp_path / "h.csv"
    path.write_text(erp_lines()[0].replace("LABST", "LABST_X") + "\n")
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 1 and q.select("locator", "reason_code").rows() == [("file", "missing_column")]
    assert "LABST" in q["reason"][0]
    path.write_text(erp_lines()[0] + "\n")  # a good header and no rows: an empty extract
    assert collect(read_tabular(str(path), ERP, crosswalks))[2] == 0
    path.write_text("")
    assert collect(read_tabular(str(path), ERP, crosswalks))[2] == 0


def test_binary_garbage_named_csv_is_an_unreadable_file(tmp_path, crosswalks):
    path = tmp_path / "g.csv"
    path.write_bytes(b"\x00\x01\x02 binary \xff\xfe garbage\n\x00\x00\n\x07\n")
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 2 and set(q["reason_code"]) == {"unreadable_file"} and "NUL bytes" in q["reason"][0]
    path.write_bytes(b"\x00\x01\x02 binary \xff\xfe garbage")
    kept, q, read = collect(read_tabular(str(path), ERP, crosswalks))
    assert read == 1 and q.select("locator", "reason_code").rows() == [("file", "unreadable_file")]


# -- EDI: a transaction of 600k segments ------------------------------------------------------------


def _big_846(lines: int) -> str:
    """The committed 846 with one transaction of `lines` LIN/QTY pairs (2 * lines + 4 segments)."""
    src = EDI_846.read_text()
    head = src[: src.index("LIN**")]
    body = "".join(f"LIN**UP*070000000003~QTY*17*{i % 500}*EA~" for i in range(lines))
    return head + body + f"SE*{2 * lines + 4}*0001~GE*1*10501~IEA*1*000010501~"


def _big_invrpt(lines: int) -> str:
    src = (WORLD.parents[1] / "tests/edi_fixtures/invrpt-una-decimal-comma.edi").read_text().splitlines()
    body = [f"LIN+{i}++036000291452:EN'" if i % 2 else "QTY+145:40:PCE'" for i in range(2 * lines)]
    return "\n".join(src[:7] + body + [f"UNT+{2 * lines + 6}+1'", "UNZ+1+INV1'"]) + "\n"


@pytest.mark.parametrize("build", [_big_846, _big_invrpt])
def test_a_transaction_over_the_segment_limit_is_refused_with_its_reason(monkeypatch, crosswalks, build):
    from invrecon.transforms.edi import values

    monkeypatch.setattr(values, "MAX_SEGMENTS_PER_TRANSACTION", 100)
    small = list(parse_edi(build(40).encode(), file="x.edi"))
    assert not [r for r in small if r["kind"] == "error" and r["code"] == "transaction_too_large"]
    records = list(parse_edi(build(60).encode(), file="x.edi"))
    assert [r["kind"] for r in records] == ["error"] and records[0]["code"] == "transaction_too_large"
    assert f"has {2 * 60 + 4 + (build is _big_invrpt) * 2} segments; transactions of more than 100 segments" in records[0]["message"]


def test_an_846_of_600k_segments_is_refused_quickly_in_bounded_memory(tmp_path, crosswalks):
    path = tmp_path / "big.edi"
    path.write_text(_big_846(300_000))
    code = f"""
import time
from invrecon.transforms.edi import AckCollector, parse_edi
t = time.monotonic()
acks = AckCollector()
records = list(parse_edi(open({str(path)!r}, "rb").read(), file="x.edi", acks=acks))
assert [r["code"] for r in records] == ["transaction_too_large"], records[:3]
assert "AK5*R" in acks.texts[0]
assert time.monotonic() - t < 10
"""
    assert _peak_rss_mb(code) < 400


def test_read_edi_streams_a_large_file_in_batches_with_the_same_records(tmp_path, crosswalks, monkeypatch):
    from invrecon.transforms.edi import AckCollector
    from invrecon.transforms.readers import edi as edi_reader
    from invrecon.transforms.readers.edi import read_edi

    for path in (EDI_846, EDI_846.with_name("856_asn.edi")):
        want = collect([canonical_from_edi(list(parse_edi(path.read_bytes(), file=str(path))), str(path), EDI, crosswalks)])
        monkeypatch.setattr(edi_reader, "EDI_BATCH_RECORDS", 7)
        acks = AckCollector()
        results = list(read_edi(str(path), EDI, crosswalks, acks=acks))
        got = collect(results)
        assert len(results) == -(-want[2] // 7) and got[2] == want[2] and got[0].rows() == want[0].rows() and acks.texts
        monkeypatch.undo()
    text = _big_846(90_000)  # 180k segments a transaction, three of them (reading them all as one list: ~890 MB)
    one = text[text.index("ST*846"):text.index("GE*")]
    path = tmp_path / "big.edi"
    path.write_text(text[:text.index("ST*846")] + "".join(one.replace("*0001~", f"*000{i}~") for i in range(1, 4)) + "GE*3*10501~IEA*1*000010501~")
    code = f"""
from tests.transforms.hostile import EDI
from invrecon.transforms.canonical import load_crosswalks
from invrecon.transforms.readers.edi import read_edi
cw = load_crosswalks("fixtures/world/crosswalk/sku.csv", "fixtures/world/crosswalk/location.csv")
n = 0
for r in read_edi({str(path)!r}, EDI, cw):
    n += r.positions.num_rows if r.positions is not None else 0
assert n == 270_000, n
"""
    assert _peak_rss_mb(code) < 550


# -- exact duplicate rows ---------------------------------------------------------------------------


def test_exact_duplicate_erp_rows_are_quarantined_and_rows_that_differ_add_up(tmp_path, crosswalks):
    lines = erp_lines()
    lines[0] += ",LGORT"  # storage location: not mapped, but part of what makes a row itself
    lines[1:] = [f"{row},0001" for row in lines[1:]]
    copies = [lines[i] for i in (3, 10, 10, 42, 100)]
    bin2 = lines[5].replace(",0001", ",0002")  # the same material and plant in another bin: adds up
    path = tmp_path / "erp.csv"
    path.write_text("\n".join(lines + copies + [bin2]) + "\n")
    results = list(read_tabular(str(path), ERP, crosswalks))
    kept, q, read = collect(results)
    assert read == 192 and kept.height == 187
    assert codes(q) == {f"line {n}": "duplicate_row" for n in (188, 189, 190, 191, 192)}
    assert q.sort("locator")["reason"].to_list()[:3] == [
        "line 188 repeats line 4 in every column; counted once",
        "line 189 repeats line 11 in every column; counted once",
        "line 190 repeats line 11 in every column; counted once",
    ]


def test_duplicate_rows_are_found_across_parquet_batches_and_jsonl_key_orders(tmp_path, crosswalks, monkeypatch):
    from invrecon.transforms.readers import tabular

    df = pl.read_parquet(STORE_PARQUET).head(20)
    path = tmp_path / "s.parquet"
    pl.concat([df, df.slice(2, 3)]).write_parquet(path, row_group_size=8)
    monkeypatch.setattr(tabular, "BATCH_ROWS", 8)
    kept, q, read = collect(read_tabular(str(path), STORE, crosswalks))
    assert read == 23 and codes(q) == {"row 21": "duplicate_row", "row 22": "duplicate_row", "row 23": "duplicate_row"}

    lines = COMMERCE_JSONL.read_text().splitlines()[:5]
    again = json.dumps(dict(reversed(list(json.loads(lines[1]).items()))))  # the same object, keys reversed
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines + [again]) + "\n")
    kept, q, read = collect(read_tabular(str(path), COMMERCE, crosswalks))
    assert read == 6 and codes(q) == {"line 6": "duplicate_row"}


# -- a reader bug costs its batch, counted record by record ----------------------------------------


def test_an_unforeseen_failure_quarantines_its_batch_record_by_record(tmp_path, crosswalks, monkeypatch):
    from invrecon.transforms.readers import edi, events, tabular

    def boom(*args, **kwargs):
        raise ZeroDivisionError("nobody saw this coming")

    monkeypatch.setattr(tabular, "canonical_positions", boom)
    kept, q, read = collect(read_tabular(str(ERP_CSV), ERP, crosswalks))
    assert read == 190 and set(q["reason_code"]) == {"reader_error", "malformed_row"}
    assert q.filter(pl.col("reason_code") == "reader_error").height == 189
    assert "ZeroDivisionError: nobody saw this coming" in q.filter(pl.col("reason_code") == "reader_error")["reason"][-1]
    monkeypatch.setattr(events, "canonical_events_frame", boom)
    kept, q, read = collect(read_events(str(EVENTS_JSONL), EVENTS, crosswalks))
    assert read == 215 and q.filter(pl.col("reason_code") == "reader_error").height == 214  # one line is malformed
    monkeypatch.setattr(edi, "canonical_from_edi", boom)
    kept, q, read = collect(edi.read_edi(str(EDI_846), EDI, crosswalks))
    assert read == 39 and q["reason_code"].unique().to_list() == ["reader_error"]


def test_the_event_canonicalizer_rejects_a_frame_row_without_a_required_field(crosswalks):
    """The stream and the batch hand it decoded frames; a null there must be missing_field, not a cast error."""
    from invrecon.transforms.readers.events import canonical_events_frame

    ev = json.loads(good_event_lines()[0])
    row = {"event_id": ev["event_id"], "event_type": ev["event_type"], "occurred_at": ev["occurred_at"], "system": ev["system"],
           "location": ev["location"], "id_type": ev["item"]["id_type"], "item_id": ev["item"]["id"], "qty": str(ev["qty"]),
           "uom": "EA", "reference": None, "counterparty_location": None, "_locator": "line 1", "_raw": "{}"}
    rows = [row, {**row, "location": None, "_locator": "line 2"}, {**row, "event_id": "", "qty": None, "_locator": "line 3"}]
    result = canonical_events_frame(pl.DataFrame(rows, schema={k: pl.String for k in row}), uri="x", spec=EVENTS, crosswalks=crosswalks)
    kept, q, read = collect([result])
    assert read == 3 and kept.height == 1
    assert q.select("locator", "reason").rows() == [("line 2", "field location missing or empty"), ("line 3", "field event_id, qty missing or empty")]
