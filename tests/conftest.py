"""Shared test helpers: the committed world, fresh generated worlds, and running a batch."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import duckdb
import pytest

from invrecon.fixtures.generator import WorldSpec, generate

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORLD = ROOT / "fixtures" / "world"
SHARED = ROOT.parent / "shared"
EDI_SAMPLES = SHARED / "edi-samples"
RUN_DATE = "2026-11-30"


def header_only(path: pathlib.Path) -> pathlib.Path:
    """Cut a CSV extract down to its header line (a source that delivers no rows); returns it."""
    path.write_text(path.read_text().splitlines()[0] + "\n")
    return path


def run_batch(config: pathlib.Path | str, run_date: str = RUN_DATE, *, output: pathlib.Path | str, extra: list[str] | None = None) -> int:
    """Run `invrecon batch` in-process on the FnApiRunner and return its exit code."""
    from invrecon.pipelines import batch_run

    argv = ["--config", str(config), "--run-date", run_date, "--output", str(output), "--quiet", "--buckets", "4"]
    return batch_run.main(argv + list(extra or []))


# Columns that say when a run ran, not what it found: they differ between two runs of the same inputs.
RUN_TIME_COLUMNS = frozenset({"started", "finished"})


def _normalized(value, world: str):
    if isinstance(value, dict):
        return {k: _normalized(v, world) for k, v in value.items() if k not in RUN_TIME_COLUMNS}
    if isinstance(value, list):
        return [_normalized(v, world) for v in value]
    if isinstance(value, str):
        return value.replace(world, "<world>")
    return value


def published_rows(output: pathlib.Path | str, *, world: pathlib.Path | str = WORLD) -> dict[str, list[dict]]:
    """Every live row of every published table of `output` (any fsspec URL), read through the commit log.

    Rows are sorted (a table's row order is the runner's), the world's location in paths (input
    URIs, lineage, messages) reads `<world>`, and the run's start and finish times are dropped:
    two runs of the same world, wherever it and the output live, give equal dicts.
    """
    from invrecon.pipelines.publish import read_commits, read_live_table
    from invrecon.pipelines.warehouse_views import SCHEMAS

    commits = read_commits(str(output))
    world = str(world).rstrip("/")
    return {
        table: sorted((_normalized(r, world) for r in read_live_table(str(output), table, schema, commits=commits).to_pylist()), key=repr)
        for table, schema in SCHEMAS.items()
    }


def run_cli(*args, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `invrecon ARGS...` in a child process: a real process, which a test may kill or let hold a lock."""
    return subprocess.run(
        [sys.executable, "-m", "invrecon.pipelines.cli", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})},
    )


def warehouse(output: pathlib.Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(output / "warehouse.duckdb"), read_only=True)


@pytest.fixture(scope="session")
def committed_run(tmp_path_factory) -> pathlib.Path:
    """The committed world, run once for the whole session; returns the output folder."""
    out = tmp_path_factory.mktemp("committed") / "out"
    assert run_batch(WORLD / "config.yaml", output=out) == 0
    return out


@pytest.fixture
def world_copy(tmp_path) -> pathlib.Path:
    """A private copy of the committed world that a test may damage."""
    dst = tmp_path / "world"
    shutil.copytree(WORLD, dst, ignore=shutil.ignore_patterns("out"))
    return dst


def make_world(path: pathlib.Path, **kw) -> pathlib.Path:
    generate(path, WorldSpec(**kw))
    return path


def fail_the_erp_after_a_good_day(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A two-day world: 2026-11-29 succeeds, then 2026-11-30's ERP extract is header-only and the
    gate stops that run (exit 3). Returns (world, output)."""
    world = make_world(tmp_path / "w", skus=16, locations=4, days=2, seed=5)
    out = tmp_path / "out"
    assert run_batch(world / "config.yaml", "2026-11-29", output=out) == 0
    header_only(world / "inputs" / "erp" / "2026-11-30" / "erp_stock.csv")
    assert run_batch(world / "config.yaml", "2026-11-30", output=out) == 3
    return world, out
