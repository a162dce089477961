"""A warehouse file held read-write by another process (issue 12 §3): wait, then fail cleanly.

The analyst is a real second process holding `duckdb.connect(path)` (what the DuckDB CLI does
by default); nothing is mocked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from invrecon.pipelines import publish
from invrecon.pipelines.warehouse import WarehouseLocked, ensure_warehouse
from invrecon.schemas.tables import PARTITION_COLUMN
from tests.conftest import RUN_DATE, WORLD, run_cli

# The analyst: opens the file read-write, says so, holds it for argv[2] seconds.
HOLDER = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(float(sys.argv[2])); c.close()"


class Holder:
    """A child process that holds `path` open read-write for `seconds` (killed on exit)."""

    def __init__(self, path, seconds: float):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def published(committed_run, tmp_path):
    """A private copy of the committed world's output (published, with its warehouse)."""
    out = tmp_path / "out"
    shutil.copytree(committed_run, out)
    return out


def test_ensure_warehouse_waits_for_a_lock_released_in_time(published):
    with Holder(published / "warehouse.duckdb", 3) as holder:
        t0 = time.monotonic()
        ensure_warehouse(str(published / "warehouse.duckdb"), str(published), wait_s=60)
        waited = time.monotonic() - t0
        assert holder.proc.poll() is not None  # it only got in once the analyst let go
    assert 1 < waited < 30


def test_ensure_warehouse_gives_up_naming_the_holder(published):
    with Holder(published / "warehouse.duckdb", 120) as holder:
        t0 = time.monotonic()
        with pytest.raises(WarehouseLocked) as e:
            ensure_warehouse(str(published / "warehouse.duckdb"), str(published), wait_s=1.5)
        assert 1.5 <= time.monotonic() - t0 < 15
        assert f"PID {holder.pid}" in str(e.value) and "-c import duckdb" in e.value.holder
        assert "Conflicting lock" in e.value.detail


def test_batch_on_a_locked_warehouse_exits_1_with_one_line_and_leaves_a_valid_publish(published, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(WORLD, world, ignore=shutil.ignore_patterns("out"))
    commits_before = publish.read_commits(str(published)).column("seq").to_pylist()
    with Holder(published / "warehouse.duckdb", 600) as holder:
        r = run_cli("batch", "--config", world / "config.yaml", "--run-date", RUN_DATE, "--output", published,
                    "--quiet", "--buckets", "4", "--warehouse-wait", "2")
        assert r.returncode == 1, r.stderr[-3000:]
        assert "Traceback" not in r.stderr
        lines = [line for line in r.stderr.splitlines() if line.startswith("invrecon batch:")]
        assert len(lines) == 1, r.stderr[-3000:]
        line = lines[0]
        assert f"warehouse {published}/warehouse.duckdb is locked by PID {holder.pid}" in line
        assert "after waiting 2 s" in line and f"invrecon warehouse --output {published}" in line
        assert "is published" in line
        # the publish before it is complete and clean: a new commit, no staging, nothing stray
        commits = publish.read_commits(str(published))
        assert max(commits.column("seq").to_pylist()) == max(commits_before) + 1
        assert not list((published / "_staging").glob("*"))
        live = {f for files in publish.live_files(commits).values() for f in files}
        on_disk = {str(p.relative_to(published)) for t in PARTITION_COLUMN for p in (published / t).glob("*/*")}
        assert on_disk == live
    r = run_cli("warehouse", "--output", published)
    assert r.returncode == 0, r.stderr
    assert "already current" in r.stdout or "views written" in r.stdout


def test_warehouse_command_on_a_locked_file_exits_1(published):
    with Holder(published / "warehouse.duckdb", 600) as holder:
        r = run_cli("warehouse", "--output", published, "--warehouse-wait", "1")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and f"locked by PID {holder.pid}" in r.stderr
