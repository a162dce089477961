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

One writer per output folder at a time: two runs publishing into the same output at once are
not supported (the commit sequence is taken from the log).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import re
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "COMMITS",
    "PARTITION_COLUMN",
    "Layout",
    "live_files",
    "new_attempt",
    "publish",
    "read_commits",
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
    # A rename on a local disk, a copy that appears whole on object storage: either way readers
    # see the commit complete or not at all.
    fs.mv(tmp, f"{root}/_commits/{seq:012d}.parquet")
    return seq


def publish(
    *,
    output: str,
    staging: str,
    tables: tuple[str, ...],
    run_id: str,
    run_date: dt.date,
    attempt: str,
) -> dict[str, list[str]]:
    """Move the staged files of `tables` into place, commit them, delete what they replace.

    Args:
      output: the output folder.
      staging: the run's staging folder (`Layout.staging`).
      tables: the tables to publish; every other table keeps its previous commit.
      run_id, run_date, attempt: stamped on the commit rows and the file names.

    Returns:
      table -> the files (relative to `output`) this run published.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    staging_root = fsspec.core.url_to_fs(staging)[1].rstrip("/")
    before = live_files(read_commits(output))
    rows: list[dict] = []
    published: dict[str, list[str]] = {}
    for table in tables:
        moves = _plan_moves(fs, staging_root, table, run_date, attempt)
        for src, partition, owner, rel in moves:
            fs.makedirs(f"{root}/{rel.rsplit('/', 1)[0]}", exist_ok=True)
            fs.mv(src, f"{root}/{rel}")
            rows.append({"run_id": run_id, "attempt": attempt, "table": table, "partition": partition, "owner": owner, "file": rel})
            published.setdefault(table, []).append(rel)
        now_owned = {(table, p, o) for _, p, o, _ in moves}
        for key in before:  # partitions this run owned before and no longer writes (movements)
            if key[0] == table and key[2] == run_date and key not in now_owned:
                rows.append({"run_id": run_id, "attempt": attempt, "table": table, "partition": key[1], "owner": key[2], "file": None})
    seq = _write_commit(layout, rows)
    log.info("commit %d: %d files of %d tables", seq, sum(len(v) for v in published.values()), len(published))
    _collect_garbage(layout, {(r["table"], r["partition"]) for r in rows})
    return published


def _collect_garbage(layout: Layout, partitions: set[tuple[str, str]]) -> None:
    """Delete the files of `partitions` that no latest commit names (replaced or never committed)."""
    fs, root = layout.fs, layout.root
    live = {f for files in live_files(read_commits(layout.output)).values() for f in files}
    for table, partition in sorted(partitions):
        try:
            names = fs.ls(f"{root}/{table}/{partition}", detail=False)
        except FileNotFoundError:
            continue
        for path in names:
            rel = f"{table}/{partition}/{path.rsplit('/', 1)[-1]}"
            if rel not in live:
                fs.rm(path)


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
