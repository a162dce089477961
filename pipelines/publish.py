"""Publish a run's staged Parquet files with one atomic commit, on any fsspec filesystem.

Layout under the output folder (a local path or any fsspec URL: `file://`, `s3://`, `gs://`,
`memory://`):

    <table>/<col>=<date>/part-<owner>-<attempt>-<k>.parquet    the data files
    _commits/<seq>.parquet                                     the commit log
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
CHECKPOINTS = "_commits/_checkpoints"  # not matched by the `_commits/*.parquet` glob of the views
KEEP_CHECKPOINTS = 2
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
    "publish.checkpoint_tmp": "the checkpoint of this commit is written under its tmp name, not yet renamed",
    "publish.checkpoint": "the checkpoint of this commit is in place, the older ones not yet deleted",
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


def _names(fs, folder: str) -> list[str]:
    """The file names in `folder`, listed afresh ([] when it does not exist)."""
    try:
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False))
    except FileNotFoundError:  # object storage has no empty folders
        return []


def _read_commit_files(fs, folder: str, names: list[str]) -> list[pa.Table]:
    tables = []
    for name in names:
        with fs.open(f"{folder}/{name}", "rb") as f:
            tables.append(pq.read_table(f).cast(COMMITS))
    return tables


def _seqs(names: list[str]) -> dict[int, str]:
    return {int(m[1]): name for name in names if (m := _COMMIT_NAME.match(name))}


def read_commits(output: str) -> pa.Table:
    """Every commit row of an output folder, the whole log (empty when nothing was ever published).

    O(runs): for audit and tests. What is live needs only `latest_commits`.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    # The log is the truth only when listed afresh: s3fs / gcsfs cache listings, and another
    # process (a run's workers, the next run, its garbage collection) may have changed the output
    # since this one last looked; a stale listing would name files that are gone.
    fs.invalidate_cache()
    names = [name for _, name in sorted(_seqs(_names(fs, f"{root}/_commits")).items())]
    tables = _read_commit_files(fs, f"{root}/_commits", names)
    return pa.concat_tables(tables) if tables else COMMITS.empty_table()


def latest_commits(output: str) -> pa.Table:
    """The latest commit rows of every (table, partition, owner): all that `live_files` needs.

    Reads the newest checkpoint that opens and the commits after it (see the module docstring),
    so its cost is the live set, not the number of runs. `live_files(latest_commits(o))` equals
    `live_files(read_commits(o))`.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    fs.invalidate_cache()  # as in read_commits: listings must be fresh
    commits = _seqs(_names(fs, f"{root}/_commits"))
    base, since = COMMITS.empty_table(), 0
    for seq, name in sorted(_seqs(_names(fs, f"{root}/{CHECKPOINTS}")).items(), reverse=True):
        try:
            base, since = _read_commit_files(fs, f"{root}/{CHECKPOINTS}", [name])[0], seq
            break
        except (OSError, pa.ArrowInvalid):  # cut short or gone: an older one, or the whole log
            log.warning("commit checkpoint %s unreadable; reading the commits before it", name)
    newer = _read_commit_files(fs, f"{root}/_commits", [commits[s] for s in sorted(commits) if s > since])
    return _latest_rows(pa.concat_tables([base, *newer]))


def _latest_rows(commits: pa.Table) -> pa.Table:
    """The rows of the latest commit of each (table, partition, owner), tombstones included."""
    if not commits.num_rows:
        return commits
    keys = ["table", "partition", "owner"]
    latest = commits.group_by(keys).aggregate([("seq", "max")]).rename_columns([*keys, "seq"])
    return commits.join(latest, [*keys, "seq"], join_type="inner").select(COMMITS.names).sort_by([(k, "ascending") for k in [*keys, "file"]])


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


def _write_commit(layout: Layout, rows: list[dict], *, before: pa.Table) -> pa.Table:
    """Write the commit file (the commit point), then its checkpoint; returns the latest rows after it.

    `before` is `latest_commits` read by this publish: the checkpoint is it plus `rows`.
    """
    fs, root = layout.fs, layout.root
    fs.makedirs(f"{root}/_commits", exist_ok=True)
    existing = set(_seqs(_names(fs, f"{root}/_commits"))) | set(_seqs(_names(fs, f"{root}/{CHECKPOINTS}")))
    seq = max(existing, default=0) + 1
    now = dt.datetime.now(dt.timezone.utc)
    table = pa.Table.from_pylist([{**r, "seq": seq, "committed_at": now} for r in rows], schema=COMMITS)
    # A rename on a local disk, a copy that appears whole on object storage: either way readers
    # see the commit complete or not at all.
    _write_atomically(fs, f"{root}/_commits", seq, table, "publish.commit_tmp")
    crashpoint("publish.commit")
    after = _latest_rows(pa.concat_tables([before, table]))
    _write_atomically(fs, f"{root}/{CHECKPOINTS}", seq, after, "publish.checkpoint_tmp")
    crashpoint("publish.checkpoint")
    for old in sorted(_seqs(_names(fs, f"{root}/{CHECKPOINTS}")))[:-KEEP_CHECKPOINTS]:
        fs.rm(f"{root}/{CHECKPOINTS}/{old:012d}.parquet")
    log.info("commit %d: %d rows; checkpoint of %d latest rows", seq, table.num_rows, after.num_rows)
    return after


def _write_atomically(fs, folder: str, seq: int, table: pa.Table, point: str) -> None:
    """`<folder>/<seq>.parquet`, written under a tmp name first and renamed into place."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    fs.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{seq:012d}.{uuid.uuid4().hex[:8]}.tmp"
    fs.pipe_file(tmp, buf.getvalue())
    crashpoint(point)
    fs.mv(tmp, f"{folder}/{seq:012d}.parquet")


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
    before = live_files(commits)
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
    after = _write_commit(layout, rows, before=commits)
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
    live = {f for files in live_files(latest_commits(layout.output) if commits is None else commits).values() for f in files}
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
    for folder in (f"{root}/_commits", f"{root}/{CHECKPOINTS}"):
        for name in _names(fs, folder):
            if _COMMIT_TMP.match(name):
                fs.rm(f"{folder}/{name}")
                done.append(f"removed unfinished commit file {folder.rsplit('/', 1)[-1]}/{name}")
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
    live = live_files(latest_commits(output) if commits is None else commits)
    return [layout.url(f) for (t, _, o), files in sorted(live.items()) if t == table and (owner is None or o == owner) for f in files]


def read_live_table(output: str, table: str, schema: pa.Schema, *, commits: pa.Table | None = None) -> pa.Table:
    """Every committed row of a small table (dq_results, dq_metrics, runs, alerts), any filesystem.

    For the launcher's metadata only: it reads whole files into memory.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    live = live_files(latest_commits(output) if commits is None else commits)
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
