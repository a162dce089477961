"""The commit log of an output folder: which files each (table, partition, owner) holds now.

`_commits/<seq>.parquet` (COMMITS rows) and its checkpoints `_commits/_checkpoints/<seq>.parquet`;
`pipelines.publish` writes them (`write_commit`), everyone else reads them: `read_commits` (the
whole log, for audit), `latest_commits` (the newest checkpoint and the commits after it),
`live_files` / `live_urls` / `read_live_table` (what is published now). See `pipelines.publish`
for the layout and why one commit file is the commit point.
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from invrecon.pipelines.crashpoints import crashpoint
from invrecon.schemas import COMMITS

__all__ = [
    "CHECKPOINTS", "COMMITS", "KEEP_CHECKPOINTS", "Layout", "latest_commits", "live_files", "live_urls",
    "read_commits", "read_live_table", "remove_unfinished_commits", "rows_of", "write_commit",
]

log = logging.getLogger("invrecon.publish")

_COMMIT_NAME = re.compile(r"^(\d{12})\.parquet$")
_COMMIT_TMP = re.compile(r"^\.\d{12}\.[0-9a-f]+\.tmp$")
CHECKPOINTS = "_commits/_checkpoints"  # not matched by the `_commits/*.parquet` glob of the views
KEEP_CHECKPOINTS = 2


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one output folder keeps what (see `pipelines.publish`).

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


def rows_of(commits: pa.Table, *, owner: dt.date | None = None, partitions=None) -> pa.Table:
    """The commit rows of one owner date, or of some (table, partition) pairs, selected in Arrow.

    What a publish needs of the live set is its own date's and its own partitions' rows: selecting
    them before `live_files` keeps its Python work to the run, however many dates are live.
    """
    if owner is not None:
        commits = commits.filter(pc.equal(commits.column("owner"), pa.scalar(owner, pa.date32())))
    if partitions is not None:
        keys = pa.array([f"{t}\0{p}" for t, p in partitions], pa.string())
        joined = pc.binary_join_element_wise(commits.column("table"), commits.column("partition"), "\0")
        commits = commits.filter(pc.is_in(joined, value_set=keys))
    return commits


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


def write_commit(layout: Layout, rows: list[dict], *, before: pa.Table) -> pa.Table:
    """Write the commit file (the commit point), then its checkpoint; returns the latest rows after it.

    `before` is `latest_commits` read by this publish: the checkpoint is it plus `rows`.
    """
    fs, root = layout.fs, layout.root
    fs.makedirs(f"{root}/_commits", exist_ok=True)
    existing = set(_seqs(_names(fs, f"{root}/_commits"))) | set(_seqs(_names(fs, f"{root}/{CHECKPOINTS}")))
    seq = max(existing, default=0) + 1
    now = dt.datetime.now(dt.UTC)
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

    For the launcher's metadata only: it reads whole files into memory. The files are fetched in
    one `fs.cat` call, which object stores (s3fs, gcsfs) serve concurrently: a year of daily
    runs is hundreds of small files, and one round trip after another would cost minutes.
    """
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    live = live_files(latest_commits(output) if commits is None else commits)
    paths = [f"{root}/{rel}" for (name, _, _), files in sorted(live.items()) if name == table for rel in files]
    if not paths:
        return schema.empty_table()
    data = fs.cat(paths)  # {path: bytes}
    tables = []
    for path in paths:
        t = pq.read_table(pa.BufferReader(data[path]))
        tables.append(t.select([n for n in schema.names if n in t.column_names]))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def remove_unfinished_commits(layout: Layout) -> list[str]:
    """Delete the commit and checkpoint tmp files a killed publish left; what was removed."""
    fs, root = layout.fs, layout.root
    done = []
    for folder in (f"{root}/_commits", f"{root}/{CHECKPOINTS}"):
        for name in _names(fs, folder):
            if _COMMIT_TMP.match(name):
                fs.rm(f"{folder}/{name}")
                done.append(f"removed unfinished commit file {folder.rsplit('/', 1)[-1]}/{name}")
    return done
