"""Publish a run's staged Parquet files with one atomic commit, on any fsspec filesystem.

Layout under the output folder (a local path or any fsspec URL: `file://`, `s3://`, `gs://`,
`memory://`):

    <table>/<col>=<date>/part-<owner>-<attempt>-<k>.parquet    the data files
    _commits/<seq>.parquet                                     the commit log (`pipelines.commit_log`)
    _commits/_checkpoints/<seq>.parquet                        the log's latest rows as of <seq>
    _staging/<run_date>-<attempt>/<table>/...                  a run in progress

A run's Beam graph writes every table under its staging folder. `publish` then moves each staged
file into its partition under a name that carries the run date that owns it and the run's attempt
id (a rename on a local disk, a server-side copy on object storage: metadata work, never a pass
over the rows), and writes one small commit file naming every file the run now owns. That commit
file is the commit point: the warehouse's views (`pipelines.warehouse`) read only the files the
latest commit of each (table, partition, owner) names, so a reader sees the previous run or this
one, never a mix, whatever moment a crash picks. Finally the files no commit names any more are
deleted. The cost is O(files of this run), whatever the history holds.

Checkpoints. Every commit also writes a checkpoint: the latest commit rows of every (table,
partition, owner) as of that commit, one file. The launcher (`latest_commits`: planning, the gate's
history, publishing, `recover`, the stream's seeds) reads the newest checkpoint and any commit
newer than it, so its cost does not grow with the number of runs; the full log stays for audit
(`read_commits`) and for DuckDB's `_live` view. A checkpoint is only a cache of the log: one
missing or cut short (a crash between the commit and its checkpoint) is skipped, and the commits
after the previous one are read instead. The two newest checkpoints are kept.

Who owns a partition: tables partitioned by the run's date (snapshot_date, run_date) are owned
by that date; `movements` is partitioned by event date and each run date owns its own file in
every event-date partition its events fall on (so a late event of yesterday, applied tonight,
sits beside yesterday's own file). A backfill that re-ages later dates writes their
`discrepancies` and `alerts` partitions, owned by those later dates.

Crash safety. Before its first rename, `publish` writes the run's plan (`_publish.json`: its
attempt, the partitions it touches, the folders it replaces) into the staging folder, which is
removed only once the run is fully published. A process killed at any point leaves at most:
renamed files no commit names (before the commit point), replaced files not yet deleted (after
it), a `_commits/.<seq>.<id>.tmp`, and its staging folder.
Readers of the commit log see none of them. `recover`, which the next run calls before its
graph, deletes them: from each left-over staging folder's plan it deletes every file of those
partitions that no latest commit names, finishes the folder replacement of a run that did
commit (its EDI acks), and removes the staging folder; then it deletes stray commit tmp files.
Its cost is O(what the crashed run wrote). `CRASH_POINTS` names every step at which the
crash tests (`tests/test_publish_crash.py`) kill the process.

One writer per output folder at a time: two runs publishing into the same output at once are
not supported (the commit sequence is taken from the log, and `recover` removes every staging
folder it finds).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid

import fsspec
import pyarrow as pa

from invrecon.pipelines.commit_log import (
    COMMITS,
    Layout,
    latest_commits,
    live_files,
    live_urls,
    read_commits,
    read_live_table,
    remove_unfinished_commits,
    rows_of,
    write_commit,
)
from invrecon.pipelines.crashpoints import CRASH_POINTS, crashpoint
from invrecon.schemas.tables import PARTITION_COLUMN

# The commit log's and crash points' names stay importable from here (`publish.read_commits`).
__all__ = [
    "COMMITS",
    "CRASH_POINTS",
    "PLAN_FILE",
    "Layout",
    "crashpoint",
    "latest_commits",
    "live_files",
    "live_urls",
    "new_attempt",
    "publish",
    "read_commits",
    "read_live_table",
    "recover",
]

log = logging.getLogger("invrecon.publish")

# A staged file whose name starts with `<col>=<value>--` goes to that partition (movements by
# event date; later dates re-aged by a backfill); any other goes to `<col>=<run date>`.
_STAGED_PARTITION = re.compile(r"^(?P<col>[a-z_]+)=(?P<value>\d{4}-\d{2}-\d{2})--")
# The run's publish plan, in its staging folder (see the module docstring).
PLAN_FILE = "_publish.json"


def new_attempt() -> str:
    """A fresh attempt id: every run, re-runs of the same inputs included, writes new file names."""
    return uuid.uuid4().hex[:12]


def _owner_of(table: str, partition: str, run_date: dt.date) -> dt.date:
    if PARTITION_COLUMN[table] == "event_date":
        return run_date
    return dt.date.fromisoformat(partition.split("=", 1)[1])


def _staged_files(fs, staging_root: str, table: str) -> list[str]:
    try:
        found = fs.find(f"{staging_root}/{table}")
    except FileNotFoundError:
        return []
    return sorted(p for p in found if p.endswith(".parquet"))


def _plan_moves(fs, staging_root: str, table: str, run_date: dt.date, attempt: str) -> list[tuple[str, str, dt.date, str]]:
    """(staged path, partition, owner, relative destination) of every staged file of `table`."""
    col = PARTITION_COLUMN[table]
    counter: dict[str, int] = {}
    moves = []
    for path in _staged_files(fs, staging_root, table):
        m = _STAGED_PARTITION.match(path.rsplit("/", 1)[-1])
        if m and m["col"] != col:
            raise ValueError(f"{path}: staged for partition column {m['col']}, table {table} is partitioned by {col}")
        partition = f"{col}={m['value'] if m else run_date.isoformat()}"
        owner = _owner_of(table, partition, run_date)
        k = counter.get(partition, 0)
        counter[partition] = k + 1
        moves.append((path, partition, owner, f"{table}/{partition}/part-{owner.isoformat()}-{attempt}-{k:05d}.parquet"))
    return moves


def publish(
    *,
    output: str,
    staging: str,
    tables: tuple[str, ...],
    run_id: str,
    run_date: dt.date,
    attempt: str,
    replace_folders: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Move the staged files of `tables` into place, commit them, delete what they replace.

    Args:
      output: the output folder.
      staging: the run's staging folder (`Layout.staging`).
      tables: the tables to publish; every other table keeps its previous commit.
      run_id, run_date, attempt: stamped on the commit rows and the file names.
      replace_folders: staged folder -> output folder (both relative) replaced whole once the
        run is committed, e.g. {"acks": "acks/run_date=2026-11-30"}; not read through the commit
        log (the EDI 997s go to partners), but finished by `recover` if a crash interrupts it.

    Returns:
      table -> the files (relative to `output`) this run published.

    Example: a re-run of 2026-11-30 killed right after its third rename leaves three new files
    in their partitions that no commit names; readers of the commit log (the warehouse views,
    `live_files`) still see the previous run, and the next run's `recover` deletes the three.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    staging_root = fsspec.core.url_to_fs(staging)[1].rstrip("/")
    commits = latest_commits(output)
    before = live_files(rows_of(commits, owner=run_date))  # what this run date owned so far
    rows: list[dict] = []
    published: dict[str, list[str]] = {}
    planned = {table: _plan_moves(fs, staging_root, table, run_date, attempt) for table in tables}
    for table, moves in planned.items():
        for _, partition, owner, rel in moves:
            rows.append({"run_id": run_id, "attempt": attempt, "table": table, "partition": partition, "owner": owner, "file": rel})
            published.setdefault(table, []).append(rel)
        now_owned = {(table, p, o) for _, p, o, _ in moves}
        for key in before:  # partitions this run owned before and no longer writes (movements)
            if key[0] == table and key[2] == run_date and key not in now_owned:
                rows.append({"run_id": run_id, "attempt": attempt, "table": table, "partition": key[1], "owner": key[2], "file": None})
    partitions = sorted({(r["table"], r["partition"]) for r in rows})
    _write_plan(fs, staging_root, attempt=attempt, run_id=run_id, partitions=partitions, replace_folders=replace_folders or {})
    crashpoint("publish.plan")
    for moves in planned.values():
        for src, _, _, rel in moves:
            fs.makedirs(f"{root}/{rel.rsplit('/', 1)[0]}", exist_ok=True)
            fs.mv(src, f"{root}/{rel}")
            crashpoint("publish.rename")
    after = write_commit(layout, rows, before=commits)
    log.info("published %d files of %d tables", sum(len(v) for v in published.values()), len(published))
    _collect_garbage(layout, partitions, commits=after)
    crashpoint("publish.gc")
    for src, dst in sorted((replace_folders or {}).items()):
        _replace_folder(fs, f"{staging_root}/{src}", f"{root}/{dst}")
    return published


def _write_plan(fs, staging_root: str, *, attempt: str, run_id: str, partitions: list[tuple[str, str]], replace_folders: dict[str, str]) -> None:
    plan = {"attempt": attempt, "run_id": run_id, "partitions": [list(p) for p in partitions], "replace_folders": replace_folders}
    fs.pipe_file(f"{staging_root}/{PLAN_FILE}", json.dumps(plan, indent=1).encode())


def _replace_folder(fs, src: str, dst: str) -> None:
    """Replace `dst` by the staged `src` (nothing to do when `src` was not staged or already moved)."""
    files = fs.find(src)  # [] when nothing was staged (and on object storage there is no folder)
    if not files:
        return
    if fs.exists(dst):
        fs.rm(dst, recursive=True)
    crashpoint("publish.replace_folder")
    fs.makedirs(dst, exist_ok=True)
    # File by file: a recursive `mv` of a folder means different things on a disk and in a bucket.
    for f in files:
        fs.mv(f, f"{dst}/{f[len(src):].lstrip('/')}")


def _collect_garbage(layout: Layout, partitions, *, commits: pa.Table | None = None) -> list[str]:
    """Delete the files of `partitions` that no latest commit names (replaced or never committed)."""
    fs, root = layout.fs, layout.root
    commits = latest_commits(layout.output) if commits is None else commits
    live = {f for files in live_files(rows_of(commits, partitions=partitions)).values() for f in files}
    deleted = []
    for table, partition in sorted(set(map(tuple, partitions))):
        try:
            names = fs.ls(f"{root}/{table}/{partition}", detail=False)
        except FileNotFoundError:
            continue
        for path in sorted(names):
            rel = f"{table}/{partition}/{path.rsplit('/', 1)[-1]}"
            if rel not in live:
                fs.rm(path)
                deleted.append(rel)
                crashpoint("publish.delete")
    return deleted


def recover(output: str) -> list[str]:
    """Clean up after runs that were killed while finishing; returns what it did, one line each.

    For each left-over staging folder (`_staging/<date>-<attempt>/`): if it holds a publish plan,
    delete every file of the plan's partitions that no latest commit names (the crashed run's
    uncommitted files, or the files its commit replaced), and, if the run did commit, finish
    replacing its folders (EDI acks); then remove the staging folder. Finally delete stray
    `_commits/.*.tmp` files. A folder with no plan was killed before publishing: removed as is.
    Cost: the crashed runs' own files and partitions, never the history.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    try:
        stagings = sorted(fs.ls(f"{root}/_staging", detail=False))
    except FileNotFoundError:
        stagings = []
    done: list[str] = []
    commits = latest_commits(output) if stagings else None
    for folder in stagings:
        plan = _read_plan(fs, folder)
        if plan is not None:
            committed = commits is not None and plan["attempt"] in set(commits.column("attempt").to_pylist())
            deleted = _collect_garbage(layout, [tuple(p) for p in plan["partitions"]], commits=commits)
            if committed:
                for src, dst in sorted(plan["replace_folders"].items()):
                    _replace_folder(fs, f"{folder}/{src}", f"{root}/{dst}")
            what = "committed" if committed else "not committed"
            done.append(f"run {plan['run_id']} (attempt {plan['attempt']}, {what}): deleted {len(deleted)} file(s) no commit names")
        fs.rm(folder, recursive=True)
        done.append(f"removed left-over staging folder {folder.rsplit('/', 1)[-1]}")
    done += remove_unfinished_commits(layout)
    for line in done:
        log.warning("recovered: %s", line)
    return done


def _read_plan(fs, folder: str) -> dict | None:
    """The publish plan of a staging folder; None when absent or cut short (nothing was renamed)."""
    try:
        return json.loads(fs.cat_file(f"{folder}/{PLAN_FILE}"))
    except (FileNotFoundError, ValueError):
        return None
