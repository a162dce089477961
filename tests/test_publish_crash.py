"""Crash-safe publishing (issue 12 §4): the batch is SIGKILLed at every step of finishing a run.

The scenario, in one output folder (restored from a copy before each kill: the warehouse views
name their folder by absolute path, so a copy elsewhere would read the original):

1. run date D is published from the committed world (the *old* run); its warehouse file is left
   as an older invrecon wrote it (stale view definitions), so a re-run rewrites it and the
   warehouse swap is among the steps;
2. a re-run of D with changed inputs (an ERP quantity, a row to quarantine, one event fewer: the
   *new* run), traced with `INVRECON_CRASH_TRACE`, lists the steps a re-run passes
   (`publish.CRASH_POINTS`) and gives the new run's figures;
3. for each step, the state of (1) is re-run with `INVRECON_CRASH_AT=<step>:<n>`: a real child
   process kills itself with SIGKILL there. Then (a) DuckDB on the warehouse views and DuckDB,
   pyarrow.dataset and polars on the committed files (`publish.live_urls`) each see every
   table of D as the old run had it (killed before the commit point) or every table as the new
   run has it (at or after it), never a mix; (b) the next run exits 0, every reader sees exactly
   the clean re-run's rows, and nothing is left over (`_staging/`, commit tmp files, warehouse
   copies, files no commit names).

The steps come from publish's own table and the trace, so a step added to `CRASH_POINTS` is
tested here without editing this file (and a listed step the re-run never passes fails). A step
passed once per file (renames, deletes) is killed at its first and last pass; set
`INVRECON_CRASH_EVERY=1` to kill at every pass (30 kills on this world, ~15 minutes).
What a raw hive-glob reader of `<table>/` sees after each kill is printed (`pytest -s`), not
asserted: README.md "Reading the Parquet directly" says why it can see a mix and how to read
correctly.

And a table's first files (the first run after gate-failed ones) show in the warehouse with
the rest of their run, without new views (last test).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import pathlib
import shutil
import signal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from invrecon.pipelines import publish
from invrecon.schemas.tables import PARTITION_COLUMN
from tests.conftest import RUN_DATE, WORLD, run_cli

D = RUN_DATE
TABLES = PARTITION_COLUMN
# Wall-clock columns of `runs`: a re-run of the same inputs differs only in these.
VOLATILE = ("started", "finished")
# The commit point: a kill before it must leave the old run, at or after it the new one.
COMMIT_POINT = "publish.commit"
EVERY = os.environ.get("INVRECON_CRASH_EVERY") == "1"


def _batch(world: pathlib.Path, out: pathlib.Path, **env: str):
    return run_cli("batch", "--config", world / "config.yaml", "--run-date", D, "--output", out,
                   "--quiet", "--buckets", "1", env=env)


def _change_inputs(world: pathlib.Path) -> None:
    """The new run's inputs: one ERP figure +100, one ERP row for an unknown plant, one event less."""
    erp = world / "inputs" / "erp" / D / "erp_stock.csv"
    lines = erp.read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = str(int(cells[2]) + 100)
    lines[1] = ",".join(cells)
    lines.append(",".join([cells[0], "NOWHERE", "5", "", "EA", cells[5], cells[6]]))
    erp.write_text("\n".join(lines) + "\n")
    events = world / "inputs" / "events" / D / "events.jsonl"
    events.write_text("".join(events.read_text().splitlines(keepends=True)[1:]))


def _digest(table: pa.Table) -> str:
    keep = [c for c in table.column_names if c not in VOLATILE]
    rows = sorted(json.dumps(r, default=str, sort_keys=True) for r in table.select(keep).to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _date_column(table: str) -> str:
    return "run_date" if table == "movements" else TABLES[table]  # movements: the owning run date


def _warehouse(out: pathlib.Path) -> dict[str, str]:
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        return {t: _digest(con.sql(f"SELECT * FROM {t} WHERE {_date_column(t)} = DATE '{D}'").to_arrow_table()) for t in TABLES}
    finally:
        con.close()


def _live(out: pathlib.Path) -> dict[str, list[str]]:
    commits = publish.read_commits(str(out))
    return {t: publish.live_urls(str(out), t, owner=dt.date.fromisoformat(D), commits=commits) for t in TABLES}


# The three readers of the committed files, as README.md "Reading the Parquet directly" shows them.
def _duckdb_files(out: pathlib.Path) -> dict[str, str]:
    con = duckdb.connect()
    return {t: _digest(con.sql(f"SELECT * FROM read_parquet({urls!r}, hive_partitioning = true, union_by_name = true)").to_arrow_table())
            for t, urls in _live(out).items()}


def _pyarrow_files(out: pathlib.Path) -> dict[str, str]:
    return {t: _digest(ds.dataset(urls, format="parquet", partition_base_dir=str(out / t),
                                  partitioning=ds.partitioning(pa.schema([(TABLES[t], pa.date32())]), flavor="hive")).to_table())
            for t, urls in _live(out).items()}


def _polars_files(out: pathlib.Path) -> dict[str, str]:
    return {t: _digest(pl.scan_parquet(urls, hive_partitioning=True).collect().to_arrow()) for t, urls in _live(out).items()}


def _raw_glob(out: pathlib.Path) -> dict[str, str]:
    """What `read_parquet('<table>/*/*.parquet')` sees: every file in the table's folders (here all of D's)."""
    got = {}
    for t in TABLES:
        files = sorted(str(p) for p in (out / t).glob("*/*.parquet"))
        try:
            got[t] = _digest(ds.dataset(files, format="parquet").to_table())
        except (OSError, pa.ArrowInvalid) as e:
            got[t] = f"error: {e}"
    return got


READERS = {
    "duckdb warehouse views": _warehouse,
    "duckdb read_parquet(live files)": _duckdb_files,
    "pyarrow.dataset(live files)": _pyarrow_files,
    "polars scan_parquet(live files)": _polars_files,
}


def _verdict(got: dict[str, str], old: dict[str, str], new: dict[str, str]) -> str:
    """'old', 'new', or what is mixed: each table is compared with the old and the new run's."""
    seen = {}
    for t in TABLES:
        if old[t] == new[t]:
            seen[t] = "same" if got[t] == old[t] else "neither"
        else:
            seen[t] = "old" if got[t] == old[t] else "new" if got[t] == new[t] else "neither"
    states = set(seen.values()) - {"same"}
    if states in ({"old"}, {"new"}):
        return states.pop()
    return "MIX " + ", ".join(f"{t}={v}" for t, v in sorted(seen.items()) if v != "same")


def _leftovers(out: pathlib.Path) -> list[str]:
    """Everything a finished run must not leave behind."""
    found = [f"_staging/{p.name}" for p in (out / "_staging").glob("*")]
    found += [f"_commits/{p.name}" for p in (out / "_commits").glob(".*.tmp")]
    found += [f"_commits/_checkpoints/{p.name}" for p in (out / "_commits" / "_checkpoints").glob(".*.tmp")]
    found += [p.name for p in out.glob("warehouse.duckdb.loading-*")]
    found += [f"_schemas/{p.name}" for p in (out / "_schemas").glob("*.tmp-*")]
    found += [str(p.relative_to(out)) for p in (out / "reports").glob("*/*.tmp-*")]
    live_files = publish.live_files(publish.read_commits(str(out)))
    if publish.live_files(publish.latest_commits(str(out))) != live_files:  # the checkpoint must agree with the log
        found.append("_commits/_checkpoints (disagrees with the commit log)")
    live = {f for files in live_files.values() for f in files}
    found += [rel for t in TABLES for p in (out / t).glob("*/*") if (rel := str(p.relative_to(out))) not in live]
    return sorted(found)


@dataclasses.dataclass
class Scenario:
    out: pathlib.Path  # every run writes here (the warehouse views name their folder)
    base: pathlib.Path  # a copy of `out` after the old run of D, restored before each kill
    new_world: pathlib.Path
    trace: list[str]  # the steps a clean re-run passes, in order
    old: dict[str, dict[str, str]]  # reader -> table -> digest
    new: dict[str, dict[str, str]]
    raw_old: dict[str, str]
    raw_new: dict[str, str]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    root = tmp_path_factory.mktemp("crash")
    old_world, new_world = root / "world-old", root / "world-new"
    shutil.copytree(WORLD, old_world, ignore=shutil.ignore_patterns("out"))
    shutil.copytree(WORLD, new_world, ignore=shutil.ignore_patterns("out"))
    _change_inputs(new_world)
    out, base = root / "out", root / "base"
    r = _batch(old_world, out)
    assert r.returncode == 0, r.stderr[-3000:]
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    con.execute("UPDATE _invrecon_meta SET value = 'written by an older invrecon' WHERE key = 'ddl_sha256'")
    con.close()
    old = {name: read(out) for name, read in READERS.items()}
    raw_old = _raw_glob(out)
    shutil.copytree(out, base)
    trace_file = root / "trace.txt"
    r = _batch(new_world, out, INVRECON_CRASH_TRACE=str(trace_file))
    assert r.returncode == 0, r.stderr[-3000:]
    assert _leftovers(out) == []
    s = Scenario(
        out=out, base=base, new_world=new_world, trace=trace_file.read_text().split(),
        old=old, new={name: read(out) for name, read in READERS.items()}, raw_old=raw_old, raw_new=_raw_glob(out),
    )
    differ = [t for t in TABLES if s.old["pyarrow.dataset(live files)"][t] != s.new["pyarrow.dataset(live files)"][t]]
    assert {"positions", "inventory_snapshot", "discrepancies", "movements", "quarantine", "runs"} <= set(differ), differ
    return s


def _passes(trace: list[str], point: str) -> list[int]:
    """The passes of `point` to kill at: all of them, or the first and the last."""
    n = trace.count(point)
    return list(range(1, n + 1)) if EVERY else sorted({1, n}) if n else []


@pytest.mark.parametrize("point", list(publish.CRASH_POINTS))
def test_kill_at_each_step_leaves_old_or_new_and_the_next_run_cleans_up(scenario: Scenario, point: str):
    passes = _passes(scenario.trace, point)
    assert passes, f"a re-run never passes {point}: the scenario no longer covers that step"
    assert set(scenario.trace) <= set(publish.CRASH_POINTS)
    for n in passes:
        where = [i for i, p in enumerate(scenario.trace) if p == point][n - 1]
        expected = "new" if where >= scenario.trace.index(COMMIT_POINT) else "old"
        out = scenario.out
        shutil.rmtree(out)
        shutil.copytree(scenario.base, out)
        r = _batch(scenario.new_world, out, INVRECON_CRASH_AT=f"{point}:{n}")
        assert r.returncode == -signal.SIGKILL, f"{point}:{n} did not kill the run (exit {r.returncode}): {r.stderr[-2000:]}"

        # (a) after the kill: every reader sees all of the old run or all of the new one
        seen = {name: _verdict(read(out), scenario.old[name], scenario.new[name]) for name, read in READERS.items()}
        left = _leftovers(out)
        raw = _verdict(_raw_glob(out), scenario.raw_old, scenario.raw_new)
        print(f"\n{point}:{n}: readers {sorted(set(seen.values()))}; raw hive glob: {raw}; left over: {len(left)} {left[:4]}")
        assert seen == {name: expected for name in READERS}, f"{point}:{n}: {seen}"

        # (b) the next run succeeds, equals the clean re-run and removes every leftover
        r = _batch(scenario.new_world, out)
        assert r.returncode == 0, f"after {point}:{n}: {r.stderr[-3000:]}"
        assert _leftovers(out) == []
        for name, read in READERS.items():
            assert read(out) == scenario.new[name], f"after {point}:{n}, {name} differs from a clean run"
        assert _raw_glob(out) == scenario.raw_new  # at rest, even a raw glob reader is right


def test_a_tables_first_files_show_with_the_rest_of_their_run_without_new_views(committed_run, tmp_path):
    """The first run after gate-failed ones brings the first snapshot and discrepancies ever: the
    commit alone shows them beside the run's other tables (no warehouse rewrite to wait for)."""
    from invrecon.pipelines.warehouse import ensure_warehouse

    out, day = tmp_path / "out", dt.date.fromisoformat(D)

    def publish_tables(attempt: str, tables: tuple[str, ...]) -> None:
        staging = out / "_staging" / f"{D}-{attempt}"
        for t in tables:
            (staging / t).mkdir(parents=True)
            shutil.copy(next((committed_run / t).glob("*/*.parquet")), staging / t / "part-00000.parquet")
        publish.publish(output=str(out), staging=str(staging), tables=tables, run_id=f"run-{attempt}", run_date=day, attempt=attempt)

    def count(table: str) -> int:
        con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        finally:
            con.close()

    publish_tables("a1", ("runs", "quarantine"))  # what a gate-failed run publishes (in part)
    assert ensure_warehouse(str(out / "warehouse.duckdb"), str(out)) is True
    assert count("inventory_snapshot") == 0 and count("discrepancies") == 0 and count("runs") == 1
    publish_tables("a2", ("runs", "quarantine", "inventory_snapshot", "discrepancies"))
    assert count("inventory_snapshot") > 0 and count("discrepancies") > 0  # before any refresh
    assert ensure_warehouse(str(out / "warehouse.duckdb"), str(out)) is False
