"""The warehouse's SQL: one view per published table and the analyst views (VIEWS).

Every table's view reads the Parquet files the latest commit names (`_live`) plus an empty file
of its schema (`<output>/_schemas/`); `ddl(output)` is every statement `pipelines.warehouse`
runs to (re)build the views. Value at stake and aging are `pipelines.discrepancy_sql`, which the
report, the alerts and the run's figures (`pipelines.settle`) read too.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pyarrow.parquet as pq

from invrecon.pipelines.discrepancy_sql import AT_STAKE, NOT_AGED_IN, UNEXPLAINED_IN, VALUE_SUMS
from invrecon.pipelines.publish import Layout
from invrecon.pipelines.warehouse_docs import ENUMS, MONEY, TYPED, comment_ddl
from invrecon.schemas.tables import PARTITION_COLUMN, TABLES

__all__ = ["SCHEMAS", "VIEWS", "VIEWS_VERSION", "ddl", "schema_file", "write_schema_files"]

# The schema of each published table (`schemas.tables`), for the typed empty view of a table
# that has no file yet.
SCHEMAS = {name: TABLES[name].schema for name in PARTITION_COLUMN}
# Bump when the SQL below changes shape, so existing warehouses are rebuilt.
VIEWS_VERSION = 4
# Each table's view also reads an empty Parquet file with the table's schema
# (`<output>/_schemas/<table>-<schema hash>.parquet`), so its file list is never empty: the view
# is the same SQL whether the table has files yet or not. Otherwise a table's first files (the
# first run after only gate-failed ones) would need new views, and between the commit and the
# swap the warehouse would show that table empty beside the rest of the same run.
SCHEMA_DIR = "_schemas"

# Analyst views, (re)created on every load. What value at stake, "unexplained" and "age" mean is
# `pipelines.discrepancy_sql`, so the views, the alerts, the report and the run's figures agree. Money stays exact: the table views
# give DECIMAL(18,4) rows, and every total is cast back to it from DuckDB's DECIMAL(38,4) sums.
# Each view and column is described in pipelines.warehouse_docs (its comments, docs/warehouse.md).
_VALUE_COLUMNS = ",\n               ".join(f"CAST({sql} AS {MONEY}) AS {name}" for name, sql in VALUE_SUMS.items())

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
                   bool_or(class IN ({UNEXPLAINED_IN})) AS off_tolerance
            FROM discrepancies WHERE {AT_STAKE} GROUP BY ALL)
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
               {_VALUE_COLUMNS}
        FROM discrepancies WHERE {AT_STAKE} GROUP BY ALL""",
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
        FROM discrepancies WHERE class NOT IN ({NOT_AGED_IN})""",
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


def _duck_root(output: str) -> str:
    """The output folder as DuckDB should name it in the views (an absolute path or a URL)."""
    if "://" in output and not output.startswith("file://"):
        return output.rstrip("/")
    return os.path.abspath(output.removeprefix("file://")).rstrip("/")


def schema_file(name: str) -> str:
    """The empty Parquet file of table `name`'s schema, relative to the output folder."""
    digest = hashlib.sha256(SCHEMAS[name].serialize().to_pybytes()).hexdigest()[:12]
    return f"{SCHEMA_DIR}/{name}-{digest}.parquet"


def write_schema_files(output: str) -> None:
    """Write the schema files the views read that are missing (each whole, via a tmp name)."""
    layout = Layout(output)
    fs, root = layout.fs, layout.root
    try:
        for stray in fs.glob(f"{root}/{SCHEMA_DIR}/*.tmp-*"):  # a kill between write and rename
            fs.rm(stray)
    except FileNotFoundError:
        pass
    for name, schema in SCHEMAS.items():
        path = f"{root}/{schema_file(name)}"
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
    col = PARTITION_COLUMN[name]
    extra = "" if col in schema.names else f", l.owner AS {col}"
    if name == "movements":
        extra = ", l.owner AS run_date"
    typed = ", ".join(f'CAST(t."{c}" AS {type_}) AS "{c}"' for c, type_ in TYPED.get(name, {}).items())
    files = f"['{root}/{schema_file(name)}', '{root}/{name}/*/*.parquet']"
    sql = f"""
        SELECT t.* EXCLUDE (filename){f" REPLACE ({typed})" if typed else ""}{extra}
        FROM read_parquet({files}, filename = true, hive_partitioning = false, union_by_name = true, allow_empty = true) t
        JOIN _live l ON l."table" = '{name}' AND l.file = regexp_extract(t.filename, '([^/]+/[^/]+/[^/]+)$', 1)"""
    # One row per key, the latest run date's copy (`Table.latest_by`): an event a later run applied
    # again (movements); the master data of the latest run that had the SKU / location.
    if TABLES[name].latest_by:
        sql += f"\n        QUALIFY row_number() OVER (PARTITION BY t.{TABLES[name].latest_by} ORDER BY l.owner DESC) = 1"
    return f"CREATE OR REPLACE VIEW {name} AS {sql}"


def ddl(output: str) -> list[str]:
    """Every statement that builds the warehouse: types, views, the meta table, the comments."""
    root = _duck_root(output)
    ddl = [f"CREATE TYPE {name} AS ENUM ({', '.join(repr(v) for v in values)})" for name, values in ENUMS.items()]
    ddl += [f"""
        CREATE OR REPLACE VIEW _live AS
        WITH c AS (SELECT * FROM read_parquet('{root}/_commits/*.parquet')),
        k AS (SELECT "table", partition, owner, max(seq) AS seq FROM c GROUP BY ALL)
        SELECT c."table", c.partition, c.owner, c.file FROM c SEMI JOIN k USING ("table", partition, owner, seq)
        WHERE c.file IS NOT NULL"""]
    ddl += [_table_view(name, root) for name in PARTITION_COLUMN]
    ddl += [f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in VIEWS.items()]
    ddl.append("CREATE TABLE _invrecon_meta (key VARCHAR, value VARCHAR)")
    return ddl + comment_ddl()
