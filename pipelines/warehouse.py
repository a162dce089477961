"""After the Beam stage: check conservation, age discrepancies, publish, load DuckDB.

The Beam job writes every table to `<output>/_staging/<run_id>/`. This module, run once by the
driver, then

1. checks conservation per source: records read = written + quarantined (DESIGN.md §7);
2. fills `first_seen` / `age_days` of the discrepancies from earlier runs in the warehouse;
3. publishes each table's partition for the run date by renaming the staged folder into place
   (a re-run replaces the partition whole, never half of it);
4. loads the partitions into `<output>/warehouse.duckdb` in one transaction and (re)creates the
   analyst views, so a reader sees the previous run or this one, nothing in between.
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

from schemas import ALERTS, DQ_RESULTS, RUNS, TABLES

__all__ = ["RunResult", "finalize", "summary_text", "VIEWS"]

log = logging.getLogger("invrecon.warehouse")

# Partition column of each published table (hive style folder `<col>=<run date>`).
PUBLISHED = {
    "inventory_snapshot": "snapshot_date",
    "discrepancies": "snapshot_date",
    "in_transit": "snapshot_date",
    "positions": "snapshot_date",
    "quarantine": "run_date",
    "dq_results": "run_date",
    "alerts": "snapshot_date",
    "runs": "run_date",
}

VIEWS = {
    "discrepancy_summary": """
        SELECT snapshot_date, location, location_type, other_system, class,
               count(*) AS rows, sum(delta) AS net_units, sum(abs(delta)) AS abs_units,
               round(sum(value_delta), 2) AS net_value, round(sum(abs(value_delta)), 2) AS gross_value
        FROM discrepancies GROUP BY ALL""",
    "inventory_record_accuracy": """
        SELECT s.snapshot_date, s.location, s.location_type,
               count(*) AS keys,
               count(*) FILTER (WHERE s.status = 'matched' OR s.status = 'record_only') AS exact_keys,
               count(*) FILTER (WHERE s.status IN ('matched', 'record_only')
                                   OR NOT EXISTS (SELECT 1 FROM discrepancies d
                                                  WHERE d.snapshot_date = s.snapshot_date AND d.sku = s.sku
                                                    AND d.location = s.location
                                                    AND d.class NOT IN ('within_tolerance', 'timing', 'oversell_risk'))) AS within_tolerance_keys,
               round(exact_keys / count(*), 4) AS ira_strict,
               round(within_tolerance_keys / count(*), 4) AS ira_tolerance
        FROM inventory_snapshot s GROUP BY ALL""",
    "oversell_risk": """
        SELECT snapshot_date, sku, location, other_system AS channel, record_qty AS atp,
               other_qty AS published, delta AS excess_units, value_delta AS excess_value
        FROM discrepancies WHERE class = 'oversell_risk'""",
    "discrepancy_aging": """
        SELECT snapshot_date, sku, location, other_system, class, first_seen, age_days, delta, value_delta
        FROM discrepancies WHERE class NOT IN ('timing', 'within_tolerance')""",
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


def _conservation(con: duckdb.DuckDBPyConnection, staging: str, job) -> list[dict]:
    read = {}
    counts_dir = f"{staging}/counts"
    for name in sorted(os.listdir(counts_dir)) if os.path.isdir(counts_dir) else []:
        with open(f"{counts_dir}/{name}") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    read[rec["source"]] = read.get(rec["source"], 0) + int(rec["read"])
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


def _age(con: duckdb.DuckDBPyConnection, staging: str, db_path: str, run_date: dt.date) -> None:
    """Rewrite the staged discrepancies with first_seen / age_days (DESIGN.md §6.7).

    A (sku, location, other_system, class) first seen on an earlier run date keeps its
    first_seen while it stays open on every run date in between; age_days = run date -
    first_seen in days (0 on the day it appears).
    """
    staged = _glob(staging, "discrepancies")
    prev_sql = "SELECT NULL::DATE AS snapshot_date, NULL AS sku, NULL AS location, NULL AS other_system, NULL AS class, NULL::DATE AS first_seen WHERE false"
    if os.path.exists(db_path):
        con.execute(f"ATTACH '{db_path}' AS wh (READ_ONLY)")
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'wh' AND table_name IN ('discrepancies', 'runs')").fetchall()[0][0]
        if has == 2:
            prev_date = con.execute("SELECT max(run_date) FROM wh.runs WHERE run_date < ? AND status = 'succeeded'", [run_date]).fetchall()[0][0]
            if prev_date is not None and (run_date - prev_date).days == 1:
                prev_sql = f"SELECT snapshot_date, sku, location, other_system, class, first_seen FROM wh.discrepancies WHERE snapshot_date = DATE '{prev_date}'"
    table = con.sql(
        f"""
        SELECT d.* REPLACE (
                 coalesce(p.first_seen, d.snapshot_date) AS first_seen,
                 CAST(date_diff('day', coalesce(p.first_seen, d.snapshot_date), d.snapshot_date) AS INTEGER) AS age_days)
        FROM read_parquet('{staged}') d
        LEFT JOIN ({prev_sql}) p USING (sku, location, other_system, class)
        ORDER BY d.location, d.sku, d.other_system, d.class
        """
    ).to_arrow_table()
    from schemas import DISCREPANCIES

    shutil.rmtree(f"{staging}/discrepancies")
    os.makedirs(f"{staging}/discrepancies")
    pq.write_table(table.cast(DISCREPANCIES), f"{staging}/discrepancies/part-00000-of-00001.parquet", compression="zstd")
    try:
        con.execute("DETACH wh")
    except duckdb.Error:
        pass


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


def _load(db_path: str, published: dict[str, str], run_date: dt.date) -> None:
    """Load into a copy of the warehouse, then swap it in with one rename.

    DuckDB lets one process write a file and no other process read it meanwhile, so loading in
    place would lock analysts out (or fail while one of them has it open). Readers holding the old
    file keep reading it; new connections see the new one; a failed load leaves the old intact.
    """
    tmp = f"{db_path}.loading-{uuid.uuid4().hex[:8]}"
    if os.path.exists(db_path):
        shutil.copyfile(db_path, tmp)
    try:
        _load_into(tmp, published, run_date)
        os.replace(tmp, db_path)
    finally:
        for leftover in (tmp, f"{tmp}.wal"):
            if os.path.exists(leftover):
                os.remove(leftover)


def _load_into(db_path: str, published: dict[str, str], run_date: dt.date) -> None:
    con = duckdb.connect(db_path)
    try:
        con.execute("BEGIN TRANSACTION")
        for table, col in PUBLISHED.items():
            src = f"{published[table]}/*.parquet"
            cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{src}')").fetchall()}
            extra = "" if col in cols else f", DATE '{run_date}' AS {col}"
            select = f"SELECT *{extra} FROM read_parquet('{src}')"
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS {select} LIMIT 0")
            con.execute(f"DELETE FROM {table} WHERE {col} = DATE '{run_date}'")
            con.execute(f"INSERT INTO {table} BY NAME {select}")
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
    for table, schema in (("dq_results", DQ_RESULTS), ("alerts", ALERTS)):
        if not _has_files(staging, table):
            _write_empty(staging, table, schema)
    con = duckdb.connect()
    counts = _conservation(con, staging, job)
    broken = [c for c in counts if not c["conserved"]]
    status = "failed" if broken else "succeeded"
    message = "; ".join(f"{c['source']}: read {c['read']} != written {c['written']} + quarantined {c['quarantined']}" for c in broken)
    db_path = f"{output}/warehouse.duckdb"
    _age(con, staging, db_path, job.run_date)
    classes = dict(con.execute(f"SELECT class, count(*) FROM read_parquet('{_glob(staging, 'discrepancies')}') GROUP BY 1 ORDER BY 1").fetchall())
    gross, net = con.execute(f"SELECT coalesce(sum(abs(value_delta)), 0), coalesce(sum(value_delta), 0) FROM read_parquet('{_glob(staging, 'discrepancies')}') WHERE class <> 'oversell_risk'").fetchall()[0]
    quarantined = sum(c["quarantined"] for c in counts)
    finished = dt.datetime.now(dt.timezone.utc)
    runs = pa.table(
        {
            "run_id": [job.run_id],
            "run_date": [job.run_date],
            "config_sha256": [cfg.sha256],
            "inputs": [[{k: f[k] for k in ("source", "uri", "size", "sha256")} for f in inputs]],
            "counts": [counts],
            "status": [status],
            "started": [started],
            "finished": [finished],
            "runner": [runner],
            "message": [message or None],
        },
        schema=RUNS,
    )
    os.makedirs(f"{staging}/runs", exist_ok=True)
    pq.write_table(runs, f"{staging}/runs/run.parquet")
    if os.path.isdir(f"{staging}/in_transit_lines"):
        shutil.rmtree(f"{staging}/in_transit_lines")
    published = _publish(con, staging, output, job.run_date)
    con.close()
    acks = f"{staging}/acks"
    if os.path.isdir(acks):
        _publish_folder(acks, f"{output}/acks/run_date={job.run_date.isoformat()}")
    _load(db_path, published, job.run_date)
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
        quarantined=quarantined, alerts=0, message=message,
    )


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
        f"  duckdb {r.warehouse} \"SELECT class, location, sku, record_qty, other_qty, delta, value_delta "
        f"FROM discrepancies WHERE snapshot_date = DATE '{r.run_date}' ORDER BY abs(value_delta) DESC LIMIT 20\""
    )
    lines.append(
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{r.warehouse}', read_only=True).sql('SELECT * FROM discrepancy_summary'))\""
    )
    return "\n".join(lines)
