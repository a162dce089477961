"""The analysts' DuckDB warehouse: views over the published Parquet, never a copy of it.

`<output>/warehouse.duckdb` (or `--warehouse PATH`) holds no data. Each table of the output
(`pipelines.publish.PARTITION_COLUMN`) is a view that reads the Parquet files the latest commit
of each partition names (`_live`, from `<output>/_commits/`), and the analyst views (VIEWS) are
built on those. So:

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

The run's own summary figures, aging and alerts come from `pipelines.settle`, inside the graph.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import hashlib
import io
import logging
import os
import re
import time
import uuid

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import alerts
from invrecon.pipelines.alerts import EXPLAINED, NOT_AGED, UNEXPLAINED
from invrecon.pipelines.publish import PARTITION_COLUMN, Layout, crashpoint, latest_commits
from invrecon.pipelines.warehouse_docs import ENUMS, MONEY, TYPED, comment_ddl
from invrecon.schemas import (
    ALERTS, DISCREPANCIES, DQ_METRICS, DQ_RESULTS, IN_TRANSIT, INVENTORY_SNAPSHOT, ITEMS, LOCATIONS, MOVEMENT, POSITION, QUARANTINE, RUNS,
)

__all__ = [
    "AGE_KEY", "DEFAULT_WAIT_S", "PUBLISHED", "RunResult", "VIEWS", "WarehouseLocked", "aging_sql", "connect", "default_warehouse",
    "ensure_warehouse", "main", "register_output", "summary_text",
]

log = logging.getLogger("invrecon.warehouse")

PUBLISHED = PARTITION_COLUMN
# The schema of each table, for the typed empty view of a table that has no file yet.
SCHEMAS = {
    "inventory_snapshot": INVENTORY_SNAPSHOT, "discrepancies": DISCREPANCIES, "in_transit": IN_TRANSIT,
    "positions": POSITION, "movements": MOVEMENT, "quarantine": QUARANTINE, "dq_results": DQ_RESULTS,
    "dq_metrics": DQ_METRICS, "alerts": ALERTS, "runs": RUNS, "items": ITEMS, "locations": LOCATIONS,
}
# Tables whose view keeps one row per key, the copy of the latest run date: an event a later run
# applied again (movements); the master data of the latest run that had the SKU / location.
LATEST_BY = {"movements": "event_id", "items": "sku", "locations": "location"}
# Bump when the SQL below changes shape, so existing warehouses are rebuilt.
VIEWS_VERSION = 4
# Each table's view also reads an empty Parquet file with the table's schema
# (`<output>/_schemas/<table>-<schema hash>.parquet`), so its file list is never empty: the view
# is the same SQL whether the table has files yet or not. Otherwise a table's first files (the
# first run after only gate-failed ones) would need new views, and between the commit and the
# swap the warehouse would show that table empty beside the rest of the same run.
SCHEMA_DIR = "_schemas"

# Analyst views, (re)created on every load. Class groups come from pipelines.alerts so the views,
# the alerts and the report agree on what "unexplained" means. Money stays exact: the table views
# give DECIMAL(18,4) rows, and every total is cast back to it from DuckDB's DECIMAL(38,4) sums.
# Each view and column is described in pipelines.warehouse_docs (its comments, docs/warehouse.md).
_UNEXPLAINED = ", ".join(f"'{c}'" for c in UNEXPLAINED)
_EXPLAINED = ", ".join(f"'{c}'" for c in EXPLAINED)
_NOT_AGED = ", ".join(f"'{c}'" for c in NOT_AGED)

VIEWS = {
    # Rows, units and value per location and class; gross never nets a plus against a minus.
    "discrepancy_summary": f"""
        SELECT snapshot_date, location, location_type, other_system, class, currency,
               count(*) AS rows, CAST(sum(delta) AS BIGINT) AS net_units, CAST(sum(abs(delta)) AS BIGINT) AS abs_units,
               CAST(sum(value_delta) AS {MONEY}) AS net_value, CAST(sum(abs(value_delta)) AS {MONEY}) AS gross_value
        FROM discrepancies GROUP BY ALL""",
    # Inventory record accuracy: share of (sku, location) keys whose record is right.
    # strict: no compared system differs at the cut-off by a unit nobody explains (in_transit is
    # explained; oversell_risk compares availability, not counts); within tolerance: no
    # missing_in_other / missing_in_record / qty_mismatch.
    "inventory_record_accuracy": f"""
        WITH off AS (
            SELECT snapshot_date, sku, location,
                   bool_or(class <> 'in_transit' AND delta <> 0) AS off_strict,
                   bool_or(class IN ({_UNEXPLAINED})) AS off_tolerance
            FROM discrepancies WHERE class <> 'oversell_risk' GROUP BY ALL)
        SELECT s.snapshot_date, s.location, s.location_type,
               count(*) AS keys,
               count(*) FILTER (WHERE NOT coalesce(o.off_strict, false)) AS exact_keys,
               count(*) FILTER (WHERE NOT coalesce(o.off_tolerance, false)) AS within_tolerance_keys,
               round(exact_keys / keys, 4) AS ira_strict,
               round(within_tolerance_keys / keys, 4) AS ira_tolerance
        FROM inventory_snapshot s LEFT JOIN off o USING (snapshot_date, sku, location)
        GROUP BY ALL""",
    # Absolute deviation: Σ|variance| / Σ record units per location (never netted). Variance is
    # the rolled delta of every count comparison except in_transit (explained to the unit).
    "absolute_deviation": """
        WITH var AS (
            SELECT snapshot_date, location, CAST(sum(abs(delta)) AS BIGINT) AS abs_variance_units, CAST(sum(delta) AS BIGINT) AS net_variance_units
            FROM discrepancies WHERE class NOT IN ('oversell_risk', 'in_transit') GROUP BY ALL),
        units AS (
            SELECT snapshot_date, location, location_type, count(*) AS keys,
                   CAST(sum(abs(coalesce(on_hand, 0))) AS BIGINT) AS record_units
            FROM inventory_snapshot GROUP BY ALL)
        SELECT u.snapshot_date, u.location, u.location_type, u.keys, u.record_units,
               coalesce(v.abs_variance_units, 0) AS abs_variance_units,
               coalesce(v.net_variance_units, 0) AS net_variance_units,
               CASE WHEN u.record_units > 0 THEN round(coalesce(v.abs_variance_units, 0) / u.record_units, 6) END AS abs_deviation
        FROM units u LEFT JOIN var v USING (snapshot_date, location)""",
    # Value variance per location and currency: gross (Σ|value|) and net (Σ value), all of it and
    # the unexplained part; oversell_risk is exposure, not a book difference, so it is left out.
    "value_variance": f"""
        SELECT snapshot_date, location, location_type, currency, count(*) AS rows,
               CAST(coalesce(sum(abs(value_delta)), 0) AS {MONEY}) AS gross_value,
               CAST(coalesce(sum(value_delta), 0) AS {MONEY}) AS net_value,
               CAST(coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({_UNEXPLAINED})), 0) AS {MONEY}) AS unexplained_gross_value,
               CAST(coalesce(sum(value_delta) FILTER (WHERE class IN ({_UNEXPLAINED})), 0) AS {MONEY}) AS unexplained_net_value,
               CAST(coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({_EXPLAINED})), 0) AS {MONEY}) AS explained_gross_value
        FROM discrepancies WHERE class <> 'oversell_risk' GROUP BY ALL""",
    "oversell_risk": """
        SELECT snapshot_date, sku, location, location_type, other_system AS channel, record_qty AS atp,
               other_qty AS published, delta AS excess_units, value_delta AS excess_value, unit_cost, currency,
               first_seen, age_days
        FROM discrepancies WHERE class = 'oversell_risk'""",
    "oversell_risk_by_sku": f"""
        SELECT snapshot_date, sku, count(DISTINCT location) AS locations,
               list_sort(list(DISTINCT other_system)) AS channels,
               CAST(sum(delta) AS BIGINT) AS excess_units, CAST(sum(value_delta) AS {MONEY}) AS excess_value, max(age_days) AS max_age_days
        FROM discrepancies WHERE class = 'oversell_risk' GROUP BY ALL""",
    "discrepancy_aging": f"""
        SELECT snapshot_date, sku, location, location_type, other_system, class, first_seen, age_days,
               CASE WHEN age_days = 0 THEN '0' WHEN age_days <= 2 THEN '1-2' WHEN age_days <= 6 THEN '3-6'
                    WHEN age_days <= 13 THEN '7-13' WHEN age_days <= 29 THEN '14-29' ELSE '30+' END AS age_bucket,
               CASE WHEN age_days = 0 THEN 0 WHEN age_days <= 2 THEN 1 WHEN age_days <= 6 THEN 2
                    WHEN age_days <= 13 THEN 3 WHEN age_days <= 29 THEN 4 ELSE 5 END AS age_bucket_order,
               delta, value_delta, currency
        FROM discrepancies WHERE class NOT IN ({_NOT_AGED})""",
    # Data-quality trend per run date and source: conservation counts from `runs` beside the
    # expectation results of `dq_results`.
    "dq_trend": """
        WITH c AS (SELECT run_date, unnest(counts) AS c FROM runs),
        counts AS (
            SELECT run_date, c.source AS source, c.read AS records_read, c.written AS records_written,
                   c.quarantined AS records_quarantined
            FROM c),
        dq AS (
            SELECT run_date, source, count(*) AS expectations,
                   count(*) FILTER (WHERE NOT success) AS expectations_failed,
                   count(*) FILTER (WHERE NOT success AND severity = 'critical') AS critical_failed,
                   CAST(sum(element_count) AS BIGINT) AS elements_checked, CAST(sum(unexpected_count) AS BIGINT) AS unexpected
            FROM dq_results GROUP BY ALL)
        SELECT run_date, source,
               coalesce(records_read, 0) AS records_read, coalesce(records_written, 0) AS records_written,
               coalesce(records_quarantined, 0) AS records_quarantined,
               round(records_quarantined / nullif(records_read, 0), 4) AS quarantine_rate,
               coalesce(expectations, 0) AS expectations, coalesce(expectations_failed, 0) AS expectations_failed,
               coalesce(critical_failed, 0) AS critical_failed,
               round(unexpected / nullif(elements_checked, 0), 4) AS unexpected_rate
        FROM counts FULL OUTER JOIN dq USING (run_date, source)""",
    "quarantine_summary": """
        SELECT run_date, source, reason_code, count(*) AS rows FROM quarantine GROUP BY ALL""",
}


@dataclasses.dataclass
class RunResult:
    run_id: str
    run_date: dt.date
    status: str
    output: str
    warehouse: str
    counts: list[dict]
    classes: dict[str, int]
    value_at_stake: float
    net_value: float
    quarantined: int
    alerts: int
    message: str = ""
    data_docs: str | None = None  # the Data Docs index (pipelines.data_docs), None when not built
    warnings: tuple[str, ...] = ()  # data-quality checks that failed as warnings (quality_gate.warnings_of)


AGE_KEY = ("sku", "location", "other_system", "class")


def aging_sql(open_rows: str, run_dates: str) -> str:
    """SQL giving first_seen / age_days of every row of `open_rows` (DESIGN.md §6.7).

    The rule: the run dates are the dates in `run_dates` (succeeded runs). A (sku, location,
    other_system, class) is aged over the *consecutive run dates* on which it was open: its streak
    breaks on a run date where it was not open, never on a calendar day without a run (no run is
    no evidence that it closed). first_seen = the first run date of the streak; age_days =
    calendar days from first_seen to the row's date.

    Worked example, run dates 11-25, 11-26, 11-28, 11-29 (no run on 11-27), one key open on
    11-25, 11-26, 11-28 and 11-29: first_seen 11-25 on every date, age_days 0, 1, 3, 4. Backfill
    11-27 without that key: the streak breaks there, so 11-28 becomes first_seen 11-28, age 0 and
    11-29 age 1.

    Args:
      open_rows: a relation with snapshot_date and the AGE_KEY columns.
      run_dates: a relation with a `run_date` column.
    """
    key = ", ".join(AGE_KEY)
    return f"""
        WITH dates AS (
            SELECT run_date, row_number() OVER (ORDER BY run_date) AS r
            FROM (SELECT DISTINCT run_date FROM {run_dates})),
        k AS (
            SELECT DISTINCT o.snapshot_date, {", ".join("o." + c for c in AGE_KEY)}, d.r
            FROM {open_rows} o JOIN dates d ON d.run_date = o.snapshot_date),
        isl AS (
            SELECT *, r - row_number() OVER (PARTITION BY {key} ORDER BY r) AS island FROM k),
        f AS (
            SELECT snapshot_date, {key}, min(snapshot_date) OVER (PARTITION BY {key}, island) AS first_seen FROM isl)
        SELECT snapshot_date, {key}, first_seen,
               CAST(date_diff('day', first_seen, snapshot_date) AS INTEGER) AS age_days
        FROM f"""


def default_warehouse(output: str) -> str | None:
    """The warehouse file a run keeps for `output`: `<output>/warehouse.duckdb` for a local output
    folder, None for one in object storage (a DuckDB file is local; pass `--warehouse PATH`)."""
    if "://" in output and not output.startswith("file://"):
        return None
    return f"{output.removeprefix('file://').rstrip('/')}/warehouse.duckdb"


def _duck_root(output: str) -> str:
    """The output folder as DuckDB should name it in the views (an absolute path or a URL)."""
    if "://" in output and not output.startswith("file://"):
        return output.rstrip("/")
    return os.path.abspath(output.removeprefix("file://")).rstrip("/")


def _schema_file(name: str) -> str:
    """The empty Parquet file of table `name`'s schema, relative to the output folder."""
    digest = hashlib.sha256(SCHEMAS[name].serialize().to_pybytes()).hexdigest()[:12]
    return f"{SCHEMA_DIR}/{name}-{digest}.parquet"


def _write_schema_files(output: str) -> None:
    """Write the schema files the views read that are missing (each whole, via a tmp name)."""
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    try:
        for stray in fs.glob(f"{root}/{SCHEMA_DIR}/*.tmp-*"):  # a kill between write and rename
            fs.rm(stray)
    except FileNotFoundError:
        pass
    for name, schema in SCHEMAS.items():
        path = f"{root}/{_schema_file(name)}"
        if fs.exists(path):
            continue
        buf = io.BytesIO()
        pq.write_table(schema.empty_table(), buf)
        fs.makedirs(f"{root}/{SCHEMA_DIR}", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        fs.pipe_file(tmp, buf.getvalue())
        fs.mv(tmp, path)


def _table_view(name: str, root: str) -> str:
    """The view of a published table: its committed rows, typed for the analyst (`TYPED`)."""
    schema = SCHEMAS[name]
    col = PUBLISHED[name]
    extra = "" if col in schema.names else f", l.owner AS {col}"
    if name == "movements":
        extra = ", l.owner AS run_date"
    typed = ", ".join(f'CAST(t."{c}" AS {type_}) AS "{c}"' for c, type_ in TYPED.get(name, {}).items())
    files = f"['{root}/{_schema_file(name)}', '{root}/{name}/*/*.parquet']"
    sql = f"""
        SELECT t.* EXCLUDE (filename){f" REPLACE ({typed})" if typed else ""}{extra}
        FROM read_parquet({files}, filename = true, hive_partitioning = false, union_by_name = true, allow_empty = true) t
        JOIN _live l ON l."table" = '{name}' AND l.file = regexp_extract(t.filename, '([^/]+/[^/]+/[^/]+)$', 1)"""
    if name in LATEST_BY:
        sql += f"\n        QUALIFY row_number() OVER (PARTITION BY t.{LATEST_BY[name]} ORDER BY l.owner DESC) = 1"
    return f"CREATE OR REPLACE VIEW {name} AS {sql}"


def _ddl(output: str) -> list[str]:
    """Every statement that builds the warehouse: types, views, the meta table, the comments."""
    root = _duck_root(output)
    ddl = [f"CREATE TYPE {name} AS ENUM ({', '.join(repr(v) for v in values)})" for name, values in ENUMS.items()]
    ddl += [f"""
        CREATE OR REPLACE VIEW _live AS
        WITH c AS (SELECT * FROM read_parquet('{root}/_commits/*.parquet')),
        k AS (SELECT "table", partition, owner, max(seq) AS seq FROM c GROUP BY ALL)
        SELECT c."table", c.partition, c.owner, c.file FROM c SEMI JOIN k USING ("table", partition, owner, seq)
        WHERE c.file IS NOT NULL"""]
    ddl += [_table_view(name, root) for name in PUBLISHED]
    ddl += [f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in VIEWS.items()]
    ddl.append("CREATE TABLE _invrecon_meta (key VARCHAR, value VARCHAR)")
    return ddl + comment_ddl()


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
    _write_schema_files(output)
    ddl = _ddl(output)
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
    import sys

    from invrecon.pipelines.cli import HelpFormatter

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
        from invrecon.pipelines.config import ConfigError, load_config

        try:
            output = load_config(args.config).output
        except ConfigError as e:
            print(f"invrecon warehouse: config error: {e}", file=sys.stderr)
            return 2
    output = output.rstrip("/")
    db = args.warehouse or default_warehouse(output)
    if db is None:
        print(f"invrecon warehouse: {output} is not a local folder: name the local DuckDB file with --warehouse PATH", file=sys.stderr)
        return 2
    if not latest_commits(output).num_rows:
        print(f"invrecon warehouse: nothing is published in {output} (run `invrecon batch` first)", file=sys.stderr)
        return 2
    try:
        written = ensure_warehouse(db, output, wait_s=args.warehouse_wait)
    except WarehouseLocked as e:
        print(f"invrecon warehouse: {e} (--warehouse-wait); nothing was written", file=sys.stderr)
        return 1
    print(f"warehouse {db}: {'views written' if written else 'already current'}")
    return 0


def write_alerts_jsonl(output: str, staged_alerts: list[str], day: dt.date) -> None:
    """Write `alerts.jsonl` beside the date's report from the run's staged alerts (a small file)."""
    tables = []
    for url in staged_alerts:
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            tables.append(pq.read_table(f).cast(ALERTS))
    table = pa.concat_tables(tables) if tables else ALERTS.empty_table()
    table = table.sort_by([("rule", "ascending"), ("subject", "ascending")])
    alerts.write_jsonl(table, f"{alerts.report_dir(output, day)}/alerts.jsonl")

def summary_text(r: RunResult) -> str:
    """The few lines a person reads after `make run`."""
    lines = [f"invrecon batch {r.run_date}  run {r.run_id}  {r.status.upper()}"]
    lines.append("")
    lines.append("discrepancies by class:")
    total = 0
    for klass, n in sorted(r.classes.items()):
        lines.append(f"  {klass:<18} {n:>8}")
        total += n
    lines.append(f"  {'total':<18} {total:>8}")
    lines.append(f"value at stake (gross |value_delta|): {r.value_at_stake:,.2f}   net: {r.net_value:,.2f}")
    lines.append(f"alerts fired: {r.alerts}" + (f"  (see {alerts.report_dir(r.output, r.run_date)}/alerts.jsonl)" if r.alerts else ""))
    lines.append("")
    lines.append("records per source (read = written + quarantined):")
    for c in r.counts:
        mark = "VIOLATED" if not c["conserved"] else "file unreadable" if c.get("unreadable") else "ok"
        lines.append(f"  {c['source']:<24} {c['read']:>8} = {c['written']:>8} + {c['quarantined']:>6}  {mark}")
    if r.message:
        lines.append(f"  {r.message}")
    if r.warnings:
        lines.append("")
        lines.append("data-quality warnings (the run went on; see dq_results and the Data Docs):")
        lines += [f"  {w}" for w in r.warnings]
    lines.append("")
    lines.append(f"outputs:   {r.output}/<table>/  (Parquet, partitioned by date)")
    lines.append(f"warehouse: {r.warehouse}")
    if r.data_docs:
        lines.append(f"data docs: {r.data_docs.removeprefix('file://')}  (data-quality results of this run and the last ones; opens offline)")
    lines.append("try:")
    lines.append(
        f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT class, location, sku, record_qty, other_qty, delta, value_delta "
        f"FROM discrepancies WHERE snapshot_date = DATE '{r.run_date}' ORDER BY abs(value_delta) DESC LIMIT 20\""
    )
    lines.append(f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT * FROM discrepancy_summary\"")
    return "\n".join(lines)
