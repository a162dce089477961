"""TableCoder: tables and frames cross Beam boundaries as Arrow IPC and are weighed, not encoded.

The pipelines move a few big tables, so each one Beam pickled to weigh it cost a fifth of a
replay; the last two tests run the real graphs with table pickling made to fail.
"""

from __future__ import annotations

import copyreg

import polars as pl
import pyarrow as pa
import pytest

from invrecon.transforms.coders import TableCoder
from tests.conftest import WORLD, run_batch


def test_tables_frames_and_tuples_round_trip():
    coder = TableCoder()
    table = pa.table({"sku": ["A", None, "é"], "qty": pa.array([1, -2, None], pa.int64())})
    frame = pl.DataFrame({"sku": ["s"], "ts": [5]}, schema={"sku": pl.String, "ts": pl.Int64})
    empty = pl.DataFrame(schema={"sku": pl.String, "on_hand": pl.Int64})
    assert coder.decode(coder.encode(table)).equals(table)
    assert coder.decode(coder.encode(frame)).equals(frame)
    got_frame, got_none, got_empty = coder.decode(coder.encode((frame, None, empty)))
    assert got_frame.equals(frame) and got_none is None
    assert got_empty.schema == empty.schema and got_empty.height == 0


def test_size_is_estimated_from_buffers_without_encoding(monkeypatch):
    table = pa.table({"raw": ["x" * 100] * 1000})

    def refuse(self, value):
        raise AssertionError("estimate_size must not encode")

    monkeypatch.setattr(TableCoder, "encode", refuse)
    assert TableCoder().estimate_size(table) >= 100_000
    assert TableCoder().estimate_size((pl.from_arrow(table), None)) >= 100_000


@pytest.fixture
def no_table_pickling():
    """Make pickling a pa.Table or a pl.DataFrame fail for the duration of a test."""

    def refuse(value):
        raise AssertionError(f"a {type(value).__name__} was pickled")

    saved = {t: copyreg.dispatch_table.get(t) for t in (pa.Table, pl.DataFrame)}
    for t in saved:
        copyreg.pickle(t, refuse)
    yield
    for t, old in saved.items():
        if old is None:
            copyreg.dispatch_table.pop(t, None)
        else:
            copyreg.dispatch_table[t] = old


def test_stream_replay_pickles_no_table(tmp_path, no_table_pickling):
    from invrecon.pipelines import stock_stream

    events = f"file://{WORLD}/inputs/events/*/*.jsonl"
    argv = ["--config", str(WORLD / "config.yaml"), "--events", events, "--output", str(tmp_path), "--no-seed", "--quiet"]
    assert stock_stream.main(argv) == 0


def test_batch_pickles_no_table(tmp_path, no_table_pickling):
    assert run_batch(WORLD / "config.yaml", output=tmp_path / "out") == 0
