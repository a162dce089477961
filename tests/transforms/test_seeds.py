"""transforms.seeds: published inventory_snapshot Parquet -> RunningPosition seeds, read in the graph."""

from __future__ import annotations

import datetime as dt
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.pipelines.publish import Layout, new_attempt, publish
from invrecon.pipelines.stock_stream import latest_snapshot
from invrecon.schemas import INVENTORY_SNAPSHOT
from invrecon.transforms.seeds import ReadSeeds, row_groups, seed_elements
from invrecon.transforms.stream import seed_element

AS_OF = 1_796_104_799_999_000  # 2026-12-01T05:59:59.999Z: 2026-11-30's cut-off in America/Chicago


def snapshot(day: dt.date, rows: list[tuple[str, str, int | None, int | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"snapshot_date": day, "sku": s, "location": ln, "on_hand": oh, "reserved": r, "run_id": "r"} for s, ln, oh, r in rows],
        schema=INVENTORY_SNAPSHOT,
    )


def write(url: str, table: pa.Table, *, row_group_size: int) -> str:
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, row_group_size=row_group_size)
    return url


def test_seed_elements_are_as_of_the_cutoff():
    t = snapshot(dt.date(2026, 11, 30), [("A", "S1", 10, 2), ("B", "S1", None, None)])
    assert list(seed_elements(t, as_of_micros=AS_OF)) == [
        (("A", "S1"), ("seed", {"on_hand": 10, "reserved": 2, "as_of": AS_OF})),
        (("B", "S1"), ("seed", {"on_hand": None, "reserved": None, "as_of": AS_OF})),
    ]


def test_read_seeds_reads_every_row_group_of_every_file(tmp_path):
    """A local file and an in-memory one (any fsspec URL), several row groups each."""
    day = dt.date(2026, 11, 30)
    rows_a = [(f"SKU{i:03d}", "DC01", i, i % 3) for i in range(7)]
    rows_b = [(f"SKU{i:03d}", "S0001", None if i == 2 else 5 * i, None) for i in range(4)]
    files = (
        write(f"file://{tmp_path}/a.parquet", snapshot(day, rows_a), row_group_size=3),
        write(f"memory://seeds-{uuid.uuid4().hex[:8]}/b.parquet", snapshot(day, rows_b), row_group_size=1),
    )
    assert [len(list(row_groups(f))) for f in files] == [3, 4]
    expected = [seed_element({"sku": s, "location": ln, "on_hand": oh, "reserved": r}, as_of_micros=AS_OF) for s, ln, oh, r in rows_a + rows_b]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        seeds = p | "ReadSeeds" >> ReadSeeds(files=files, as_of_micros=AS_OF)
        assert_that(seeds, equal_to(expected), label="CheckSeeds")


def test_read_seeds_of_no_files_is_empty():
    with BeamTestPipeline(runner="FnApiRunner") as p:
        assert_that(p | "ReadSeeds" >> ReadSeeds(files=(), as_of_micros=0), equal_to([]), label="CheckEmpty")


def test_read_seeds_rejects_a_bad_configuration():
    with pytest.raises(ValueError, match="`files` must be a sequence"):
        ReadSeeds(files="file:///x.parquet", as_of_micros=0)
    with pytest.raises(ValueError, match="`as_of_micros` must be an int"):
        ReadSeeds(files=(), as_of_micros=1.5)


def _publish_snapshot(output: str, day: dt.date, table: pa.Table) -> None:
    attempt = new_attempt()
    staging = Layout(output).staging(day, attempt)
    write(f"{staging}/inventory_snapshot/part-00000.parquet", table, row_group_size=2)
    publish(output=output, staging=staging, tables=("inventory_snapshot",), run_id=f"run-{day}", run_date=day, attempt=attempt)


def test_latest_snapshot_follows_the_commit_log_on_any_filesystem():
    """The latest date with rows wins (an empty one is passed over), found from metadata alone."""
    output = f"memory://out-{uuid.uuid4().hex[:8]}"
    assert latest_snapshot(output, "America/Chicago") is None
    d1, d2, d3 = dt.date(2026, 11, 28), dt.date(2026, 11, 29), dt.date(2026, 11, 30)
    _publish_snapshot(output, d2, snapshot(d2, [("A", "S1", 1, 0), ("B", "S1", 2, 0), ("C", "S1", 3, 0)]))
    _publish_snapshot(output, d1, snapshot(d1, [("A", "S1", 9, 0)]))  # a backfill of an earlier date
    _publish_snapshot(output, d3, snapshot(d3, []))
    snap = latest_snapshot(output, "America/Chicago")
    assert snap is not None and (snap.snapshot_date, snap.rows) == (d2, 3)
    assert len(snap.files) == 1 and snap.files[0].startswith(f"{output.replace('memory://', 'memory:///')}/inventory_snapshot/snapshot_date={d2}/")
    assert snap.as_of_micros == AS_OF - 86_400_000_000
    # Re-publishing the date replaces its files: the seeds follow the latest commit.
    _publish_snapshot(output, d2, snapshot(d2, [("A", "S1", 4, 0)]))
    again = latest_snapshot(output, "America/Chicago")
    assert again.rows == 1 and again.files != snap.files
    with BeamTestPipeline(runner="FnApiRunner") as p:
        seeds = p | "ReadSeeds" >> ReadSeeds(files=again.files, as_of_micros=again.as_of_micros)
        assert_that(seeds, equal_to([(("A", "S1"), ("seed", {"on_hand": 4, "reserved": 0, "as_of": again.as_of_micros}))]), label="CheckSeeds")
