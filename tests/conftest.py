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


def run_batch(config: pathlib.Path | str, run_date: str = RUN_DATE, *, output: pathlib.Path | str, extra: list[str] | None = None) -> int:
    """Run `invrecon batch` in-process on the FnApiRunner and return its exit code."""
    from invrecon.pipelines import batch

    argv = ["--config", str(config), "--run-date", run_date, "--output", str(output), "--quiet", "--buckets", "4"]
    return batch.main(argv + list(extra or []))


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
