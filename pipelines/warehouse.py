"""After the Beam stage: check conservation, age discrepancies, raise alerts, publish, load DuckDB.

The Beam job writes every table to `<output>/_staging/<run_id>/`. This module, run once by the
driver, then

1. validates the config's `alerts:` thresholds (pipelines.alerts), before anything is published;
2. checks conservation per source: records read = written + quarantined (DESIGN.md §7);
3. fills `first_seen` / `age_days` of the discrepancies from the other run dates in the
   warehouse (`aging_sql`: streaks over consecutive run dates, so gaps do not reset an age) and
   re-ages later run dates when this one is a backfill or a re-run that changes their streaks;
4. evaluates the alert thresholds into the `alerts` table;
5. publishes each table's partition for the run date by renaming the staged folder into place
   (a re-run replaces the partition whole, never half of it), plus re-aged later partitions;
6. loads the partitions into `<output>/warehouse.duckdb` in one transaction and (re)creates the
   analyst views (VIEWS), so a reader sees the previous run or this one, nothing in between;
7. writes `<output>/reports/<date>/alerts.jsonl` for the run date (and every re-aged date).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import alerts
from invrecon.pipelines.alerts import EXPLAINED, NOT_AGED, UNEXPLAINED
from invrecon.schemas import ALERTS, DISCREPANCIES, DQ_RESULTS, RUNS

__all__ = ["AGE_KEY", "RunResult", "VIEWS", "aging_sql", "finalize", "summary_text"]

log = logging.getLogger("invrecon.warehouse")

# Partition column of each published table (hive style folder `<col>=<run date>`).
PUBLISHED = {
    "inventory_snapshot": "snapshot_date",
    "discrepancies": "snapshot_date",
    "in_transit": "snapshot_date",
    "positions": "snapshot_date",
    "quarantine": "run_date",
    "dq_results": "run_date",
    "dq_metrics": "run_date",  # pipelines.quality_gate: per-source metrics for the DQ history
    "alerts": "snapshot_date",
    "runs": "run_date",
}

# Analyst views, (re)created on every load. Class groups come from pipelines.alerts so the views,
# the alerts and the report agree on what "unexplained" means. Each is documented with an
# example query in README.md ("Warehouse and report").
_UNEXPLAINED = ", ".join(f"'{c}'" for c in UNEXPLAINED)
_EXPLAINED = ", ".join(f"'{c}'" for c in EXPLAINED)
_NOT_AGED = ", ".join(f"'{c}'" for c in NOT_AGED)

VIEWS = {
    # Rows, units and value per location and class; gross never nets a plus against a minus.
    "discrepancy_summary": """
        SELECT snapshot_date, location, location_type, other_system, class, currency,
               count(*) AS rows, CAST(sum(delta) AS BIGINT) AS net_units, CAST(sum(abs(delta)) AS BIGINT) AS abs_units,
               round(sum(value_delta), 2) AS net_value, round(sum(abs(value_delta)), 2) AS gross_value
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
               round(coalesce(sum(abs(value_delta)), 0), 2) AS gross_value,
               round(coalesce(sum(value_delta), 0), 2) AS net_value,
               round(coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({_UNEXPLAINED})), 0), 2) AS unexplained_gross_value,
               round(coalesce(sum(value_delta) FILTER (WHERE class IN ({_UNEXPLAINED})), 0), 2) AS unexplained_net_value,
               round(coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({_EXPLAINED})), 0), 2) AS explained_gross_value
        FROM discrepancies WHERE class <> 'oversell_risk' GROUP BY ALL""",
    "oversell_risk": """
        SELECT snapshot_date, sku, location, location_type, other_system AS channel, record_qty AS atp,
               other_qty AS published, delta AS excess_units, value_delta AS excess_value, unit_cost, currency,
               first_seen, age_days
        FROM discrepancies WHERE class = 'oversell_risk'""",
    "oversell_risk_by_sku": """
        SELECT snapshot_date, sku, count(DISTINCT location) AS locations,
               list_sort(list(DISTINCT other_system)) AS channels,
               CAST(sum(delta) AS BIGINT) AS excess_units, round(sum(value_delta), 2) AS excess_value, max(age_days) AS max_age_days
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


def _glob(staging: str, table: str) -> str:
    return f"{staging}/{table}/*.parquet"


def _has_files(staging: str, table: str) -> bool:
    folder = f"{staging}/{table}"
    return os.path.isdir(folder) and any(n.endswith(".parquet") for n in os.listdir(folder))


def _write_empty(staging: str, table: str, schema: pa.Schema) -> None:
    os.makedirs(f"{staging}/{table}", exist_ok=True)
    pq.write_table(schema.empty_table(), f"{staging}/{table}/part-00000-of-00001.parquet")


def read_counts(staging: str) -> dict[str, int]:
    """Records read per source, from the JSON lines the Beam readers wrote to `counts/`."""
    read: dict[str, int] = {}
    counts_dir = f"{staging}/counts"
    for name in sorted(os.listdir(counts_dir)) if os.path.isdir(counts_dir) else []:
        with open(f"{counts_dir}/{name}") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    read[rec["source"]] = read.get(rec["source"], 0) + int(rec["read"])
    return read


def write_runs_row(staging: str, *, job, cfg, inputs: list[dict], counts: list[dict], status: str, started: dt.datetime, runner: str, message: str | None) -> None:
    """Stage this run's `runs` row (finished now) for publishing."""
    runs = pa.table(
        {
            "run_id": [job.run_id],
            "run_date": [job.run_date],
            "config_sha256": [cfg.sha256],
            "inputs": [[{k: f[k] for k in ("source", "uri", "size", "sha256")} for f in inputs]],
            "counts": [counts],
            "status": [status],
            "started": [started],
            "finished": [dt.datetime.now(dt.timezone.utc)],
            "runner": [runner],
            "message": [message or None],
        },
        schema=RUNS,
    )
    os.makedirs(f"{staging}/runs", exist_ok=True)
    pq.write_table(runs, f"{staging}/runs/run.parquet")


def _conservation(con: duckdb.DuckDBPyConnection, staging: str, job) -> list[dict]:
    read = read_counts(staging)
    written: dict[str, int] = {}
    for table in ("positions", "movements", "in_transit_lines"):
        if _has_files(staging, table):
            for source, n in con.execute(f"SELECT source, count(*) FROM read_parquet('{_glob(staging, table)}') GROUP BY 1").fetchall():
                written[source] = written.get(source, 0) + n
    quarantined = dict(con.execute(f"SELECT source, count(*) FROM read_parquet('{_glob(staging, 'quarantine')}') GROUP BY 1").fetchall())
    out = []
    for spec, _ in job.sources:
        r, w, q = read.get(spec.name, 0), written.get(spec.name, 0), quarantined.get(spec.name, 0)
        out.append({"source": spec.name, "read": r, "written": w, "quarantined": q, "conserved": r == w + q})
    return out


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


def _has_tables(con: duckdb.DuckDBPyConnection, db: str, names: tuple[str, ...]) -> bool:
    quoted = ", ".join(f"'{n}'" for n in names)
    n = con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE database_name = '{db}' AND table_name IN ({quoted})").fetchall()[0][0]
    return n == len(names)


def _age(con: duckdb.DuckDBPyConnection, staging: str, db_path: str, run_date: dt.date, *, reage_later: bool) -> list[dt.date]:
    """Fill first_seen / age_days of the staged discrepancies and re-age later run dates.

    History comes from the warehouse: every earlier and later succeeded run date except this one
    (a re-run replaces its date). The staged rows are aged over that history plus this date.
    Because a date's ages depend on every earlier run date, loading this date can change the
    ages of *later* dates (a backfill, or a re-run that opens or closes a streak): each later date
    whose first_seen / age_days change gets a rewritten discrepancies partition staged under
    `<staging>/reaged/discrepancies/<date>/`, published and loaded with this run. A failed run
    (conservation broken) is aged itself but re-ages nothing (`reage_later=False`): it is no
    evidence for other dates.

    Returns:
      The later dates that were re-aged, ascending.
    """
    staged = f"read_parquet('{_glob(staging, 'discrepancies')}')"
    cols = ", ".join(f.name for f in DISCREPANCIES)
    history = False
    if os.path.exists(db_path):
        con.execute(f"ATTACH '{db_path}' AS wh (READ_ONLY)")
        history = _has_tables(con, "wh", ("discrepancies", "runs"))
    try:
        if history:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE age_dates AS
                SELECT DISTINCT run_date FROM wh.runs WHERE status = 'succeeded' AND run_date <> DATE '{run_date}'
                UNION SELECT DATE '{run_date}'""")
            # A row's age depends only on its own key's rows: keep the keys open on this date or
            # a later one, so a long history costs only the keys that still matter.
            key = ", ".join(AGE_KEY)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE age_rows AS
                WITH wanted AS (
                    SELECT DISTINCT {key} FROM {staged}
                    UNION SELECT DISTINCT {key} FROM wh.discrepancies WHERE snapshot_date > DATE '{run_date}')
                SELECT h.snapshot_date, {", ".join("h." + c for c in AGE_KEY)}, h.first_seen, h.age_days
                FROM wh.discrepancies h SEMI JOIN wanted USING ({key})
                WHERE h.snapshot_date <> DATE '{run_date}' AND h.snapshot_date IN (SELECT run_date FROM age_dates)""")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE age_dates AS SELECT DATE '{run_date}' AS run_date")
            con.execute(f"CREATE OR REPLACE TEMP TABLE age_rows AS SELECT snapshot_date, {', '.join(AGE_KEY)}, first_seen, age_days FROM {staged} WHERE false")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE aged AS
            {aging_sql(f"(SELECT snapshot_date, {', '.join(AGE_KEY)} FROM age_rows UNION ALL SELECT snapshot_date, {', '.join(AGE_KEY)} FROM {staged})", "age_dates")}""")
        on = " AND ".join(f"d.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
        table = con.sql(f"""
            SELECT d.* REPLACE (a.first_seen AS first_seen, a.age_days AS age_days)
            FROM {staged} d JOIN aged a ON {on}
            ORDER BY d.location, d.sku, d.other_system, d.class""").to_arrow_table()
        _replace_staged(staging, "discrepancies", table.select([f.name for f in DISCREPANCIES]).cast(DISCREPANCIES))
        if not (history and reage_later):
            return []
        on_h = " AND ".join(f"h.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
        changed = [r[0] for r in con.execute(f"""
            SELECT DISTINCT h.snapshot_date FROM age_rows h JOIN aged a ON {on_h}
            WHERE h.snapshot_date > DATE '{run_date}'
              AND (h.first_seen IS DISTINCT FROM a.first_seen OR h.age_days IS DISTINCT FROM a.age_days)
            ORDER BY 1""").fetchall()]
        for later in changed:
            on_w = " AND ".join(f"w.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
            t = con.sql(f"""
                SELECT w.* REPLACE (a.first_seen AS first_seen, a.age_days AS age_days)
                FROM (SELECT {cols} FROM wh.discrepancies WHERE snapshot_date = DATE '{later}') w
                JOIN aged a ON {on_w}
                ORDER BY w.location, w.sku, w.other_system, w.class""").to_arrow_table()
            folder = f"{staging}/reaged/discrepancies/{later}"
            os.makedirs(folder)
            pq.write_table(t.cast(DISCREPANCIES), f"{folder}/part-00000-of-00001.parquet", compression="zstd")
            log.info("re-aged %d discrepancies of %s after loading %s", t.num_rows, later, run_date)
        return changed
    finally:
        if os.path.exists(db_path):
            try:
                con.execute("DETACH wh")
            except duckdb.Error:
                pass


def _replace_staged(staging: str, table: str, data: pa.Table) -> None:
    shutil.rmtree(f"{staging}/{table}", ignore_errors=True)
    os.makedirs(f"{staging}/{table}")
    pq.write_table(data, f"{staging}/{table}/part-00000-of-00001.parquet", compression="zstd")


def _alerts(con: duckdb.DuckDBPyConnection, staging: str, db_path: str, *, job, cfg, thresholds: alerts.Thresholds, reaged: list[dt.date]) -> pa.Table:
    """Evaluate the alert rules for the run date into the staged `alerts` table.

    Rows another step staged (if any) are kept beside the threshold alerts. For each re-aged
    later date, its `discrepancy_age_days` alerts are re-evaluated on the new ages (its other
    alerts stay as they were) and staged under `<staging>/reaged/alerts/<date>/`.
    """
    staged = f"read_parquet('{_glob(staging, 'alerts')}')"
    kinds = [(s.name, s.system, s.kind) for s in cfg.sources]
    fired = alerts.evaluate(
        con, thresholds,
        discrepancies=f"read_parquet('{_glob(staging, 'discrepancies')}')",
        positions=f"read_parquet('{_glob(staging, 'positions')}')" if _has_files(staging, "positions") else None,
        snapshot_date=job.run_date, cutoff=job.cutoff, run_id=job.run_id, sources=kinds,
    )
    earlier = con.sql(f"SELECT {', '.join(f.name for f in ALERTS)} FROM {staged}").to_arrow_table().cast(ALERTS)
    table = pa.concat_tables([earlier, fired])
    _replace_staged(staging, "alerts", table)
    if reaged:
        con.execute(f"ATTACH '{db_path}' AS wh (READ_ONLY)")
        try:
            has_alerts = _has_tables(con, "wh", ("alerts",))
            for later in reaged:
                disc = f"read_parquet('{staging}/reaged/discrepancies/{later}/*.parquet')"
                run_id = con.execute(f"SELECT any_value(run_id) FROM wh.runs WHERE run_date = DATE '{later}'").fetchall()[0][0] or ""
                age = alerts.evaluate(
                    con, thresholds, discrepancies=disc, positions=None, snapshot_date=later,
                    cutoff=None, run_id=run_id, only=("discrepancy_age_days",),
                )
                kept = ALERTS.empty_table()
                if has_alerts:
                    kept = con.sql(
                        f"SELECT {', '.join(f.name for f in ALERTS)} FROM wh.alerts "
                        f"WHERE snapshot_date = DATE '{later}' AND rule <> 'discrepancy_age_days'"
                    ).to_arrow_table().cast(ALERTS)
                folder = f"{staging}/reaged/alerts/{later}"
                os.makedirs(folder)
                pq.write_table(pa.concat_tables([kept, age]), f"{folder}/part-00000-of-00001.parquet", compression="zstd")
        finally:
            con.execute("DETACH wh")
    return table


def _publish_folder(src: str, dst: str) -> None:
    """Replace folder `dst` by `src` with renames only, so readers never see half of it."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    trash = f"{dst}.old-{uuid.uuid4().hex[:8]}"
    if os.path.exists(dst):
        os.rename(dst, trash)
    os.rename(src, dst)
    if os.path.exists(trash):
        shutil.rmtree(trash)


def _publish(con: duckdb.DuckDBPyConnection, staging: str, output: str, run_date: dt.date) -> dict[str, str]:
    published = {}
    for table, col in PUBLISHED.items():
        src = f"{staging}/{table}"
        dst = f"{output}/{table}/{col}={run_date.isoformat()}"
        _publish_folder(src, dst)
        published[table] = dst
    # Later dates re-aged by this run (a backfill): their discrepancies and alerts partitions.
    reaged = f"{staging}/reaged"
    for table in ("discrepancies", "alerts"):
        folder = f"{reaged}/{table}"
        for day in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            _publish_folder(f"{folder}/{day}", f"{output}/{table}/{PUBLISHED[table]}={day}")
    shutil.rmtree(reaged, ignore_errors=True)
    # Movements are partitioned by event date; this run owns the files named after its run date.
    movements = f"{staging}/movements"
    dates = [r[0] for r in con.execute(f"SELECT DISTINCT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) FROM read_parquet('{movements}/*.parquet') ORDER BY 1").fetchall()]
    root = f"{output}/movements"
    os.makedirs(root, exist_ok=True)
    for part in os.listdir(root):
        stale = f"{root}/{part}/run_date={run_date.isoformat()}.parquet"
        if os.path.exists(stale) and part.split("=", 1)[-1] not in {str(d) for d in dates}:
            os.remove(stale)
    for d in dates:
        folder = f"{root}/event_date={d}"
        os.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.run_date={run_date.isoformat()}.parquet.tmp"
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{movements}/*.parquet') WHERE CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) = DATE '{d}' ORDER BY event_id) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)"
        )
        os.replace(tmp, f"{folder}/run_date={run_date.isoformat()}.parquet")
    published["movements"] = root
    return published


def _load(db_path: str, published: dict[str, str], run_date: dt.date, reaged: list[dt.date] = (), tables: dict[str, str] = PUBLISHED) -> None:
    """Load `tables` into a copy of the warehouse, then swap it in with one rename.

    `tables` other than the full PUBLISHED set (a failed data-quality gate) load only those
    partitions: no movements, no re-aged dates, no views.

    DuckDB lets one process write a file and no other process read it meanwhile, so loading in
    place would lock analysts out (or fail while one of them has it open). Readers holding the old
    file keep reading it; new connections see the new one; a failed load leaves the old intact.
    """
    tmp = f"{db_path}.loading-{uuid.uuid4().hex[:8]}"
    if os.path.exists(db_path):
        shutil.copyfile(db_path, tmp)
    try:
        _load_into(tmp, published, run_date, reaged, tables)
        os.replace(tmp, db_path)
    finally:
        for leftover in (tmp, f"{tmp}.wal"):
            if os.path.exists(leftover):
                os.remove(leftover)


def _load_partition(con: duckdb.DuckDBPyConnection, table: str, col: str, folder: str, day: dt.date) -> None:
    src = f"{folder}/*.parquet"
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{src}')").fetchall()}
    extra = "" if col in cols else f", DATE '{day}' AS {col}"
    select = f"SELECT *{extra} FROM read_parquet('{src}')"
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS {select} LIMIT 0")
    con.execute(f"DELETE FROM {table} WHERE {col} = DATE '{day}'")
    con.execute(f"INSERT INTO {table} BY NAME {select}")


def _load_into(db_path: str, published: dict[str, str], run_date: dt.date, reaged: list[dt.date], tables: dict[str, str]) -> None:
    con = duckdb.connect(db_path)
    try:
        con.execute("BEGIN TRANSACTION")
        for table, col in tables.items():
            _load_partition(con, table, col, published[table], run_date)
        if tables is not PUBLISHED:
            con.execute("COMMIT")
            return
        output = os.path.dirname(os.path.dirname(published["discrepancies"]))
        for day in reaged:
            for table in ("discrepancies", "alerts"):
                col = PUBLISHED[table]
                _load_partition(con, table, col, f"{output}/{table}/{col}={day}", day)
        run_files = f"{published['movements']}/*/run_date={run_date.isoformat()}.parquet"
        select = f"SELECT *, DATE '{run_date}' AS run_date FROM read_parquet('{run_files}')"
        if any(os.scandir(published["movements"])) and _glob_any(run_files):
            con.execute(f"CREATE TABLE IF NOT EXISTS movements AS {select} LIMIT 0")
            # One row per event_id across runs: a later run's copy of an event replaces it.
            con.execute(f"DELETE FROM movements WHERE run_date = DATE '{run_date}' OR event_id IN (SELECT event_id FROM read_parquet('{run_files}'))")
            con.execute(f"INSERT INTO movements BY NAME {select}")
        for name, sql in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _glob_any(pattern: str) -> bool:
    import glob

    return bool(glob.glob(pattern))


def finalize(*, job, cfg, output: str, inputs: list[dict], started: dt.datetime, runner: str) -> RunResult:
    """Run steps 1-4 of the module docstring and return what the summary needs."""
    staging = job.staging
    # First, so a bad `alerts:` section publishes nothing (ConfigError names the key path).
    thresholds = alerts.load_thresholds(cfg)
    from invrecon.pipelines.quality_gate import DQ_METRICS

    for table, schema in (("dq_results", DQ_RESULTS), ("alerts", ALERTS), ("dq_metrics", DQ_METRICS)):
        if not _has_files(staging, table):
            _write_empty(staging, table, schema)
    con = duckdb.connect()
    counts = _conservation(con, staging, job)
    broken = [c for c in counts if not c["conserved"]]
    status = "failed" if broken else "succeeded"
    message = "; ".join(f"{c['source']}: read {c['read']} != written {c['written']} + quarantined {c['quarantined']}" for c in broken)
    db_path = f"{output}/warehouse.duckdb"
    reaged = _age(con, staging, db_path, job.run_date, reage_later=not broken)
    fired = _alerts(con, staging, db_path, job=job, cfg=cfg, thresholds=thresholds, reaged=reaged)
    classes = dict(con.execute(f"SELECT class, count(*) FROM read_parquet('{_glob(staging, 'discrepancies')}') GROUP BY 1 ORDER BY 1").fetchall())
    gross, net = con.execute(f"SELECT coalesce(sum(abs(value_delta)), 0), coalesce(sum(value_delta), 0) FROM read_parquet('{_glob(staging, 'discrepancies')}') WHERE class <> 'oversell_risk'").fetchall()[0]
    quarantined = sum(c["quarantined"] for c in counts)
    write_runs_row(staging, job=job, cfg=cfg, inputs=inputs, counts=counts, status=status, started=started, runner=runner, message=message)
    if os.path.isdir(f"{staging}/in_transit_lines"):
        shutil.rmtree(f"{staging}/in_transit_lines")
    published = _publish(con, staging, output, job.run_date)
    con.close()
    acks = f"{staging}/acks"
    if os.path.isdir(acks):
        _publish_folder(acks, f"{output}/acks/run_date={job.run_date.isoformat()}")
    _load(db_path, published, job.run_date, reaged)
    _write_alerts_jsonl(db_path, output, [job.run_date, *reaged])
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))
    except OSError:
        pass
    if broken:
        log.error("conservation violated: %s", message)
    return RunResult(
        run_id=job.run_id, run_date=job.run_date, status=status, output=output, warehouse=db_path,
        counts=counts, classes=classes, value_at_stake=float(gross), net_value=float(net),
        quarantined=quarantined, alerts=fired.num_rows, message=message,
    )


def _write_alerts_jsonl(db_path: str, output: str, days: list[dt.date]) -> None:
    """Write `alerts.jsonl` beside each date's report from what the warehouse now holds."""
    con = duckdb.connect(db_path, read_only=True)
    try:
        for day in days:
            table = con.sql(
                f"SELECT {', '.join(f.name for f in ALERTS)} FROM alerts WHERE snapshot_date = DATE '{day}' ORDER BY rule, subject"
            ).to_arrow_table().cast(ALERTS)
            alerts.write_jsonl(table, f"{alerts.report_dir(output, day)}/alerts.jsonl")
    finally:
        con.close()


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
        mark = "ok" if c["conserved"] else "VIOLATED"
        lines.append(f"  {c['source']:<24} {c['read']:>8} = {c['written']:>8} + {c['quarantined']:>6}  {mark}")
    if r.message:
        lines.append(f"  {r.message}")
    lines.append("")
    lines.append(f"outputs:   {r.output}/<table>/  (Parquet, partitioned by date)")
    lines.append(f"warehouse: {r.warehouse}")
    lines.append("try:")
    lines.append(
        f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT class, location, sku, record_qty, other_qty, delta, value_delta "
        f"FROM discrepancies WHERE snapshot_date = DATE '{r.run_date}' ORDER BY abs(value_delta) DESC LIMIT 20\""
    )
    lines.append(f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT * FROM discrepancy_summary\"")
    return "\n".join(lines)
