"""Publish a run's staged Parquet files with one atomic commit, on any fsspec filesystem.

Layout under the output folder (a local path or any fsspec URL: `file://`, `s3://`, `gs://`,
`memory://`):

    <table>/<col>=<date>/part-<owner>-<attempt>-<k>.parquet    the data files
    _commits/<seq>.parquet                                     the commit log
    _staging/<run_date>-<attempt>/<table>/...                  a run in progress

A run's Beam graph writes every table under its staging folder. `publish` then moves each staged
file into its partition under a name that carries the run date that owns it and the run's attempt
id (a rename on a local disk, a server-side copy on object storage: metadata work, never a pass
over the rows), and writes one small commit file naming every file the run now owns. That commit
file is the commit point: the warehouse's views (`pipelines.warehouse`) read only the files the
latest commit of each (table, partition, owner) names, so a reader sees the previous run or this
one, never a mix, whatever moment a crash picks. Finally the files no commit names any more are
deleted. The cost is O(files of this run), whatever the history holds.

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

import dataclasses
import datetime as dt
import io
import json
import logging
import os
import re
import signal
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "COMMITS",
    "CRASH_POINTS",
    "PARTITION_COLUMN",
    "Layout",
    "crashpoint",
    "live_files",
    "live_urls",
    "new_attempt",
    "publish",
    "read_commits",
    "read_live_table",
    "recover",
]

log = logging.getLogger("invrecon.publish")

# Partition column of each published table (hive-style folder `<col>=<date>`).
PARTITION_COLUMN = {
    "inventory_snapshot": "snapshot_date",
    "discrepancies": "snapshot_date",
    "in_transit": "snapshot_date",
    "positions": "snapshot_date",
    "movements": "event_date",
    "quarantine": "run_date",
    "dq_results": "run_date",
    "dq_metrics": "run_date",
    "alerts": "snapshot_date",
    "runs": "run_date",
    "items": "run_date",
    "locations": "run_date",
}

# One row per file a commit names; `file` null means "(table, partition, owner) has no file now".
COMMITS = pa.schema(
    [
        pa.field("seq", pa.int64()),
        pa.field("committed_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
        pa.field("attempt", pa.string()),
        pa.field("table", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("owner", pa.date32()),
        pa.field("file", pa.string()),  # relative to the output folder
    ]
)

# A staged file whose name starts with `<col>=<value>--` goes to that partition (movements by
# event date; later dates re-aged by a backfill); any other goes to `<col>=<run date>`.
_STAGED_PARTITION = re.compile(r"^(?P<col>[a-z_]+)=(?P<value>\d{4}-\d{2}-\d{2})--")
_COMMIT_NAME = re.compile(r"^(\d{12})\.parquet$")
_COMMIT_TMP = re.compile(r"^\.\d{12}\.[0-9a-f]+\.tmp$")
# The run's publish plan, in its staging folder (see the module docstring).
PLAN_FILE = "_publish.json"

# Every step of finishing a run at which a crash leaves a different state on disk, in the order
# a run passes them (a step inside a loop is passed once per file). The crash tests read this
# table: a step added here (and passed by a re-run) is tested without touching the tests.
CRASH_POINTS = {
    "publish.plan": "the publish plan is written in the staging folder; nothing renamed yet",
    "publish.rename": "after each rename of a staged file into its partition (not committed)",
    "publish.commit_tmp": "the commit file is written under its tmp name, not yet renamed",
    "publish.commit": "the commit file is in place: the run is published, nothing deleted yet",
    "publish.delete": "after each delete of a file that no latest commit names",
    "publish.gc": "every replaced file is deleted",
    "publish.replace_folder": "a replaced folder (the EDI acks) is removed, the new one not yet moved in",
    "finish.staging": "the staging folder is being removed (its plan is gone, the rest is not)",
    "warehouse.build": "the new warehouse file is half written (`<db>.loading-*` and its WAL)",
    "warehouse.swap": "the new warehouse file is complete, not yet renamed over the old one",
}
# `INVRECON_CRASH_AT=<point>:<n>` kills this process (SIGKILL: no clean-up, no finally) the n-th
# time it passes <point> (counted over the process: a backfill's dates add up); `INVRECON_CRASH_TRACE=<file>` appends the name of every point passed.
# Test hooks only: both are read when a point is passed, never set by invrecon itself.
CRASH_AT_ENV = "INVRECON_CRASH_AT"
CRASH_TRACE_ENV = "INVRECON_CRASH_TRACE"
_passed: dict[str, int] = {}  # launcher-process counts of the points passed; never in a DoFn


def crashpoint(name: str) -> None:
    """Mark a step of the publish (`CRASH_POINTS`); the crash tests kill the process here.

    Raises:
      ValueError: `name` is not in CRASH_POINTS (a typo would make a step silently untested).
    """
    if name not in CRASH_POINTS:
        raise ValueError(f"`name` must be one of CRASH_POINTS, got {name!r}")
    _passed[name] = n = _passed.get(name, 0) + 1
    trace = os.environ.get(CRASH_TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(f"{name}\n")
    if os.environ.get(CRASH_AT_ENV) == f"{name}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


def new_attempt() -> str:
    """A fresh attempt id: every run, re-runs of the same inputs included, writes new file names."""
    return uuid.uuid4().hex[:12]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one output folder keeps what (see the module docstring).

    Args:
      output: the output folder, a local path or an fsspec URL.
    """

    output: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.output)[0]

    @property
    def root(self) -> str:
        """The output folder as a path of `fs` (no protocol)."""
        return fsspec.core.url_to_fs(self.output)[1].rstrip("/")

    def url(self, rel: str) -> str:
        """The fsspec URL of `rel` (relative to the output folder)."""
        return f"{self.output.rstrip('/')}/{rel}"

    def staging(self, run_date: dt.date, attempt: str) -> str:
        return self.url(f"_staging/{run_date.isoformat()}-{attempt}")


def _owner_of(table: str, partition: str, run_date: dt.date) -> dt.date:
    if PARTITION_COLUMN[table] == "event_date":
        return run_date
    return dt.date.fromisoformat(partition.split("=", 1)[1])


def read_commits(output: str) -> pa.Table:
    """Every commit row of an output folder (empty when nothing was ever published)."""
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    # The log is the truth only when listed afresh: s3fs / gcsfs cache listings, and another
    # process (a run's workers, the next run, its garbage collection) may have changed the output
    # since this one last looked; a stale listing would name files that are gone.
    fs.invalidate_cache()
    try:
        names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/_commits", detail=False))
    except FileNotFoundError:
        names = []
    tables = []
    for name in names:
        if _COMMIT_NAME.match(name):
            with fs.open(f"{root}/_commits/{name}", "rb") as f:
                tables.append(pq.read_table(f).cast(COMMITS))
    return pa.concat_tables(tables) if tables else COMMITS.empty_table()


def live_files(commits: pa.Table) -> dict[tuple[str, str, dt.date], list[str]]:
    """(table, partition, owner) -> the files its latest commit names (relative paths)."""
    latest: dict[tuple[str, str, dt.date], int] = {}
    rows = commits.to_pylist()
    for r in rows:
        key = (r["table"], r["partition"], r["owner"])
        latest[key] = max(latest.get(key, -1), r["seq"])
    out: dict[tuple[str, str, dt.date], list[str]] = {}
    for r in rows:
        key = (r["table"], r["partition"], r["owner"])
        if r["seq"] == latest[key] and r["file"] is not None:
            out.setdefault(key, []).append(r["file"])
    return {k: sorted(v) for k, v in out.items()}


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


def _write_commit(layout: Layout, rows: list[dict]) -> int:
    """Write the commit file (the commit point); returns its sequence number."""
    fs, root = layout.fs, layout.root
    fs.makedirs(f"{root}/_commits", exist_ok=True)
    try:
        names = fs.ls(f"{root}/_commits", detail=False)
    except FileNotFoundError:  # object storage has no empty folders: the first commit's
        names = []
    existing = [int(m[1]) for p in names if (m := _COMMIT_NAME.match(p.rsplit("/", 1)[-1]))]
    seq = max(existing, default=0) + 1
    now = dt.datetime.now(dt.timezone.utc)
    table = pa.Table.from_pylist([{**r, "seq": seq, "committed_at": now} for r in rows], schema=COMMITS)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    tmp = f"{root}/_commits/.{seq:012d}.{uuid.uuid4().hex[:8]}.tmp"
    fs.pipe_file(tmp, buf.getvalue())
    crashpoint("publish.commit_tmp")
    # A rename on a local disk, a copy that appears whole on object storage: either way readers
    # see the commit complete or not at all.
    fs.mv(tmp, f"{root}/_commits/{seq:012d}.parquet")
    crashpoint("publish.commit")
    return seq


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
    before = live_files(read_commits(output))
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
    seq = _write_commit(layout, rows)
    log.info("commit %d: %d files of %d tables", seq, sum(len(v) for v in published.values()), len(published))
    _collect_garbage(layout, partitions)
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
    live = {f for files in live_files(read_commits(layout.output) if commits is None else commits).values() for f in files}
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
    commits = read_commits(output) if stagings else None
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
    try:
        names = fs.ls(f"{root}/_commits", detail=False)
    except FileNotFoundError:
        names = []
    for path in names:
        if _COMMIT_TMP.match(path.rsplit("/", 1)[-1]):
            fs.rm(path)
            done.append(f"removed unfinished commit file {path.rsplit('/', 1)[-1]}")
    for line in done:
        log.warning("recovered: %s", line)
    return done


def _read_plan(fs, folder: str) -> dict | None:
    """The publish plan of a staging folder; None when absent or cut short (nothing was renamed)."""
    try:
        return json.loads(fs.cat_file(f"{folder}/{PLAN_FILE}"))
    except (FileNotFoundError, ValueError):
        return None


def live_urls(output: str, table: str, *, owner: dt.date | None = None, commits: pa.Table | None = None) -> list[str]:
    """The URLs of the committed files of `table` (of one owner date), for any Parquet reader.

    Hand them to DuckDB (`read_parquet([...])`), pyarrow (`pyarrow.dataset.dataset([...])`) or
    polars (`scan_parquet([...])`): unlike a glob over `<table>/`, they never include a file of
    a run in progress or one left by a crashed run.
    """
    layout = Layout(output)
    live = live_files(read_commits(output) if commits is None else commits)
    return [layout.url(f) for (t, _, o), files in sorted(live.items()) if t == table and (owner is None or o == owner) for f in files]


def read_live_table(output: str, table: str, schema: pa.Schema, *, commits: pa.Table | None = None) -> pa.Table:
    """Every committed row of a small table (dq_results, dq_metrics, runs, alerts), any filesystem.

    For the launcher's metadata only: it reads whole files into memory.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    live = live_files(read_commits(output) if commits is None else commits)
    tables = []
    for (name, _, _), files in sorted(live.items()):
        if name != table:
            continue
        for rel in files:
            with fs.open(f"{root}/{rel}", "rb") as f:
                t = pq.read_table(f)
            tables.append(t.select([n for n in schema.names if n in t.column_names]))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="default")
