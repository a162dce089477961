"""The analysts' DuckDB warehouse: views over the published Parquet, never a copy of it.

`<output>/warehouse.duckdb` (or `--warehouse PATH`) holds no data. Each table of the output
(`schemas.tables.PARTITION_COLUMN`) is a view that reads the Parquet files the latest commit
of each partition names (`_live`, from `<output>/_commits/`), and the analyst views (VIEWS) are
built on those (their SQL: `pipelines.warehouse_views`). So:

- a run costs the warehouse nothing: publishing a run is a commit (`pipelines.publish`), and
  the views see it at once, whatever the history holds;
- readers are never blocked: the file is only written when the view definitions change (a new
  version of invrecon, a moved output folder), into a copy swapped in with one rename; a
  table's first files need no new views (each view also reads an empty file of its table's
  schema under `<output>/_schemas/`);
- a reader sees the previous run of a date or the new one, never a mix: the views read only
  committed files, and one commit switches every table of a run at once;
- a run waits up to `--warehouse-wait` seconds for a file another process holds read-write,
  then fails (`WarehouseLocked`) with the run published and only the views left to refresh
  (`invrecon warehouse`, `main` below).

The views show the analyst one set of conventions, kept with their descriptions in
`pipelines.warehouse_docs` (docs/warehouse.md is generated from it): money as DECIMAL(18,4) (the
Parquet keeps float64), `class` and `severity` as ENUMs, a `COMMENT ON` every view and column
(meaning, unit, sign), and the `items` / `locations` dimensions each run publishes.

The run's own summary figures, aging and alerts come from `pipelines.settle`, inside the graph;
the lines printed after a run from `pipelines.run_summary`.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import time
import uuid

import duckdb
import fsspec

from invrecon.pipelines.cli import HelpFormatter, fail
from invrecon.pipelines.publish import crashpoint, latest_commits
from invrecon.pipelines.warehouse_views import VIEWS_VERSION, write_schema_files
from invrecon.pipelines.warehouse_views import ddl as views_ddl

__all__ = ["DEFAULT_WAIT_S", "WarehouseLocked", "connect", "default_warehouse", "ensure_warehouse", "main", "register_output"]

PROG = "invrecon warehouse"  # how its one-line errors start

log = logging.getLogger("invrecon.warehouse")

def default_warehouse(output: str) -> str | None:
    """The warehouse file a run keeps for `output`: `<output>/warehouse.duckdb` for a local output
    folder, None for one in object storage (a DuckDB file is local; pass `--warehouse PATH`)."""
    if "://" in output and not output.startswith("file://"):
        return None
    return f"{output.removeprefix('file://').rstrip('/')}/warehouse.duckdb"


def register_output(con: duckdb.DuckDBPyConnection, output: str) -> None:
    """Let `con` read `output` through its fsspec backend when that is not a local folder.

    DuckDB's own `s3://` / `gs://` support (the httpfs extension) is downloaded on first use and
    configured apart (`CREATE SECRET`); the fsspec backend the batch wrote with (s3fs, gcsfs)
    takes the usual credentials and endpoint settings, and needs nothing downloaded. Where the
    backend is not installed, DuckDB's own support is left to answer.
    """
    if "://" not in output or output.startswith("file://"):
        return
    try:
        fs = fsspec.core.url_to_fs(output)[0]
    except ImportError:
        return
    name = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if not con.filesystem_is_registered(name):  # once per connection: DuckDB refuses a second
        con.register_filesystem(fs)


def connect(db_path: str) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only, able to read the output folder it holds views over.

    The views name the Parquet files by URL; for an output in object storage the connection gets
    the output's fsspec filesystem (`register_output`), as the batch that built it had.
    """
    con = duckdb.connect(db_path, read_only=True)
    try:
        rows = con.execute("SELECT value FROM _invrecon_meta WHERE key = 'output'").fetchall()
    except duckdb.Error:  # not a warehouse of this version: nothing to register
        rows = []
    if rows:
        register_output(con, rows[0][0])
    return con


# How long a run waits for a warehouse file another process holds open read-write (the DuckDB
# CLI's default) before it gives up: long enough for an analyst's query, short enough that a
# nightly schedule notices. `invrecon batch --warehouse-wait SECONDS` overrides it.
DEFAULT_WAIT_S = 60.0
# Pause between two attempts to open a locked warehouse file.
_LOCK_RETRY_S = 0.5
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)(?: by user (?P<user>\S+))?")


class WarehouseLocked(RuntimeError):
    """Another process holds the warehouse file open read-write past the allowed wait.

    Args:
      path: the warehouse file.
      detail: DuckDB's lock error (it names the holder's program and PID).
      waited_s: how long the run waited.
    """

    def __init__(self, path: str, detail: str, waited_s: float):
        self.path, self.detail, self.waited_s = path, detail, waited_s
        super().__init__(f"warehouse {path} is locked by {self.holder} after waiting {waited_s:g} s")

    @property
    def holder(self) -> str:
        """Who holds the lock, as DuckDB says (and the holder's command line where /proc shows it)."""
        m = _LOCK_HOLDER.search(self.detail)
        if not m:
            return f"another process ({self.detail.strip().splitlines()[0] if self.detail.strip() else 'no detail'})"
        who = f"PID {m['pid']} ({m['exe']}" + (f", user {m['user'].rstrip('.')}" if m["user"] else "") + ")"
        try:
            with open(f"/proc/{m['pid']}/cmdline", "rb") as f:
                cmd = " ".join(f.read().replace(b"\0", b" ").decode(errors="replace").split())
        except OSError:
            cmd = ""
        if len(cmd) > 100:
            cmd = cmd[:99] + "…"
        return f"{who[:-1]}; command: {cmd})" if cmd else who


def _is_lock_error(e: Exception) -> bool:
    return isinstance(e, duckdb.IOException) and "lock" in str(e).lower()


def _open_read_only(db_path: str, wait_s: float) -> duckdb.DuckDBPyConnection | None:
    """A read-only connection to the warehouse, waiting up to `wait_s` while another process holds
    it read-write; None when the file is not a DuckDB file we can read (it is rebuilt).

    Raises:
      WarehouseLocked: still locked after `wait_s` seconds.
    """
    deadline = time.monotonic() + wait_s
    warned = False
    while True:
        try:
            return duckdb.connect(db_path, read_only=True)
        except duckdb.Error as e:
            if not _is_lock_error(e):
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseLocked(db_path, str(e), wait_s) from None
            if not warned:
                log.warning("warehouse %s is locked by another process; waiting up to %g s: %s", db_path, wait_s, e)
                warned = True
            time.sleep(min(_LOCK_RETRY_S, left))


def _remove_leftovers(db_path: str) -> list[str]:
    """Delete the half-built copies (`<db>.loading-*`, their WAL) a killed run left behind."""
    removed = []
    for leftover in sorted(glob.glob(f"{glob.escape(db_path)}.loading-*")):
        os.remove(leftover)
        removed.append(leftover)
        log.warning("recovered: removed left-over warehouse copy %s", leftover)
    return removed


def ensure_warehouse(db_path: str, output: str, *, wait_s: float = DEFAULT_WAIT_S) -> bool:
    """Create or refresh the warehouse's views when their definitions changed; True if written.

    Written into a copy that replaces the file with one rename, so a reader is never locked out
    and never sees half of it; a warehouse whose views are current is not touched at all. A
    read-only connection is held on the file from the check to the rename, so an analyst cannot
    open it read-write in between (a rename under a read-write session would lose their work);
    while one already does, this waits up to `wait_s` seconds.

    Raises:
      WarehouseLocked: another process held the file read-write for `wait_s` seconds; nothing
        was written (the published Parquet is complete; the views read it once refreshed).
    """
    if wait_s < 0:
        raise ValueError(f"`wait_s` must be >= 0, got {wait_s}")
    _remove_leftovers(db_path)
    write_schema_files(output)
    ddl = views_ddl(output)
    digest = hashlib.sha256(f"{VIEWS_VERSION}\n".encode() + "\n;\n".join(ddl).encode()).hexdigest()
    guard = _open_read_only(db_path, wait_s) if os.path.exists(db_path) else None
    try:
        if guard is not None:
            try:
                if guard.execute("SELECT value FROM _invrecon_meta WHERE key = 'ddl_sha256'").fetchall() == [(digest,)]:
                    return False
            except duckdb.Error:
                pass  # an older warehouse (tables, no meta): rebuilt as views below
        _build(db_path, output, ddl, digest)
    finally:
        if guard is not None:
            guard.close()
    return True


def _build(db_path: str, output: str, ddl: list[str], digest: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
    tmp = f"{db_path}.loading-{uuid.uuid4().hex[:8]}"
    try:
        con = duckdb.connect(tmp)
        try:
            register_output(con, output)
            for k, stmt in enumerate(ddl):
                con.execute(stmt)
                if k == 0:
                    crashpoint("warehouse.build")
            con.execute("INSERT INTO _invrecon_meta VALUES ('ddl_sha256', ?), ('output', ?)", [digest, output])
        finally:
            con.close()
        crashpoint("warehouse.swap")
        os.replace(tmp, db_path)
    finally:
        for leftover in (tmp, f"{tmp}.wal"):
            if os.path.exists(leftover):
                os.remove(leftover)


def main(argv: list[str] | None = None) -> int:
    """`invrecon warehouse`: create or refresh the warehouse views of an output folder.

        invrecon warehouse --config fixtures/world/config.yaml
        invrecon warehouse --output out --warehouse /data/inv.duckdb --warehouse-wait 600

    What a run does after publishing, alone: for a warehouse a run could not refresh (its file
    was locked) or one kept elsewhere. Exit 0 done or already current, 1 still locked, 2 usage.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="invrecon warehouse", description="Create or refresh the DuckDB warehouse views of an output folder.",
                                     formatter_class=HelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="config YAML: its output folder")
    where.add_argument("--output", help="the output folder (a local path)")
    parser.add_argument("--warehouse", help="the DuckDB file; default <output>/warehouse.duckdb")
    parser.add_argument("--warehouse-wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help="how long to wait for a warehouse file another process holds read-write")
    args = parser.parse_args(argv)
    output = args.output
    if args.config:
        # Only with --config: the config schema (pydantic) is loaded when a config is named.
        from invrecon.pipelines.config import ConfigError, load_config

        try:
            output = load_config(args.config).output
        except ConfigError as e:
            return fail(PROG, f"config error: {e}")
    output = output.rstrip("/")
    db = args.warehouse or default_warehouse(output)
    if db is None:
        return fail(PROG, f"{output} is not a local folder: name the local DuckDB file with --warehouse PATH")
    if not latest_commits(output).num_rows:
        return fail(PROG, f"nothing is published in {output} (run `invrecon batch` first)")
    try:
        written = ensure_warehouse(db, output, wait_s=args.warehouse_wait)
    except WarehouseLocked as e:
        return fail(PROG, f"{e} (--warehouse-wait); nothing was written", 1)
    print(f"warehouse {db}: {'views written' if written else 'already current'}")
    return 0
