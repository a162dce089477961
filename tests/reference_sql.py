"""An independent reconciliation of DESIGN.md §6 in plain DuckDB SQL.

It reads the canonical records the batch published (positions, movements, open in_transit), the
items master and the location crosswalk, and computes the discrepancies without any of the
pipeline's code: no polars, no buckets, one SQL statement. The differential test compares its
rows with the Beam pipeline's.
"""

from __future__ import annotations

import datetime as dt

import duckdb

__all__ = ["reference_discrepancies"]


def reference_discrepancies(
    con: duckdb.DuckDBPyConnection, *, out: str, items_csv: str, locations_csv: str, run_date: dt.date, cutoff_utc: dt.datetime,
    record_system: str, tolerances: list[dict],
) -> list[tuple]:
    """Return rows (sku, location, other_system, class, record_qty, other_qty, delta, raw_delta, explained_qty)."""
    T = f"TIMESTAMPTZ '{cutoff_utc.isoformat()}'"
    rule_cases_abs, rule_cases_pct = [], []
    for t in tolerances:
        conds = [f"{'other_system' if k == 'system' else k} = '{v}'" for k, v in t["match"].items()] or ["TRUE"]
        cond = " AND ".join(f"coalesce({c}, FALSE)" for c in conds)
        rule_cases_abs.append(f"WHEN {cond} THEN {float(t['abs'])}")
        rule_cases_pct.append(f"WHEN {cond} THEN {float(t['pct'])}")
    abs_case = "CASE " + " ".join(rule_cases_abs) + " ELSE 0.0 END"
    pct_case = "CASE " + " ".join(rule_cases_pct) + " ELSE 0.0 END"
    sql = f"""
    WITH
    items AS (SELECT sku, abc_class, category, coalesce(TRY_CAST(safety_stock AS BIGINT), 0) AS safety_stock
              FROM read_csv('{items_csv}', all_varchar = true)),
    locs AS (SELECT DISTINCT ON (location) location, location_type FROM read_csv('{locations_csv}', all_varchar = true)),
    p AS (SELECT * FROM read_parquet('{out}/positions/snapshot_date={run_date}/*.parquet')),
    mv AS (SELECT * FROM read_parquet('{out}/movements/*/part-{run_date}-*.parquet')),
    it AS (SELECT * FROM read_parquet('{out}/in_transit/snapshot_date={run_date}/*.parquet')),
    summed AS (
        SELECT system, sku, location, as_of, sum(on_hand) AS on_hand, sum(reserved) AS reserved
        FROM p WHERE on_hand IS NOT NULL GROUP BY ALL),
    latest AS (
        SELECT * FROM summed QUALIFY row_number() OVER (PARTITION BY system, sku, location ORDER BY as_of DESC) = 1),
    last_count AS (
        SELECT l.system, l.sku, l.location, arg_max(m.qty, (m.occurred_at, m.event_id)) AS count_qty, max(m.occurred_at) AS count_at
        FROM latest l JOIN mv m USING (sku, location)
        WHERE l.as_of <= {T} AND m.event_type = 'count' AND m.occurred_at > l.as_of AND m.occurred_at <= {T}
        GROUP BY ALL),
    rolled AS (
        SELECT l.system, l.sku, l.location, l.on_hand AS raw_qty, l.reserved,
            CASE WHEN l.as_of <= {T} THEN
                coalesce(c.count_qty, l.on_hand) + coalesce((
                    SELECT sum(m.qty) FROM mv m WHERE m.sku = l.sku AND m.location = l.location AND m.event_type <> 'count'
                      AND m.occurred_at > coalesce(c.count_at, l.as_of) AND m.occurred_at <= {T}), 0)
            ELSE
                l.on_hand - coalesce((
                    SELECT sum(m.qty) FROM mv m WHERE m.sku = l.sku AND m.location = l.location AND m.event_type <> 'count'
                      AND m.occurred_at > {T} AND m.occurred_at <= l.as_of), 0)
            END AS qty_t,
            CASE WHEN l.as_of <= {T} THEN
                l.reserved + coalesce((SELECT sum(m.reserved_delta) FROM mv m WHERE m.sku = l.sku AND m.location = l.location
                                       AND m.occurred_at > l.as_of AND m.occurred_at <= {T}), 0)
            ELSE
                l.reserved - coalesce((SELECT sum(m.reserved_delta) FROM mv m WHERE m.sku = l.sku AND m.location = l.location
                                       AND m.occurred_at > {T} AND m.occurred_at <= l.as_of), 0)
            END AS reserved_t
        FROM latest l LEFT JOIN last_count c USING (system, sku, location)),
    keys AS (SELECT DISTINCT sku, location FROM rolled),
    coverage AS (SELECT DISTINCT system AS other_system, location FROM rolled WHERE system <> '{record_system}'),
    pairs AS (
        SELECT k.sku, k.location, cv.other_system,
               r.qty_t AS record_qty, r.raw_qty AS raw_record_qty, s.qty_t AS other_qty, s.raw_qty AS raw_other_qty,
               i.abc_class, i.category, lt.location_type,
               coalesce((SELECT sum(qty) FROM it WHERE it.sku = k.sku AND it.to_location = k.location), 0) AS inbound,
               coalesce((SELECT sum(qty) FROM it WHERE it.sku = k.sku AND it.from_location = k.location), 0) AS outbound
        FROM keys k JOIN coverage cv USING (location)
        LEFT JOIN rolled r ON r.sku = k.sku AND r.location = k.location AND r.system = '{record_system}'
        LEFT JOIN rolled s ON s.sku = k.sku AND s.location = k.location AND s.system = cv.other_system
        LEFT JOIN items i ON i.sku = k.sku
        LEFT JOIN locs lt ON lt.location = k.location),
    measured AS (
        SELECT *, coalesce(other_qty, 0) - coalesce(record_qty, 0) AS delta,
               coalesce(raw_other_qty, 0) - coalesce(raw_record_qty, 0) AS raw_delta,
               greatest({abs_case}, {pct_case} * abs(coalesce(record_qty, 0))) AS tol
        FROM pairs),
    classified AS (
        SELECT *, CASE
            WHEN record_qty IS NOT NULL AND record_qty <> 0 AND other_qty IS NULL THEN 'missing_in_other'
            WHEN other_qty IS NOT NULL AND other_qty <> 0 AND record_qty IS NULL THEN 'missing_in_record'
            WHEN delta <> 0 AND abs(delta) IN (inbound, outbound, inbound + outbound) THEN 'in_transit'
            WHEN abs(raw_delta) > tol AND abs(delta) <= tol THEN 'timing'
            WHEN abs(delta) > 0 AND abs(delta) <= tol THEN 'within_tolerance'
            WHEN delta <> 0 THEN 'qty_mismatch'
        END AS class
        FROM measured),
    atp AS (
        SELECT r.sku, r.location, greatest(0, r.qty_t - coalesce(r.reserved_t, 0) - coalesce(i.safety_stock, 0)) AS atp
        FROM rolled r LEFT JOIN items i USING (sku) WHERE r.system = '{record_system}'),
    published AS (
        SELECT * FROM (SELECT system, sku, location, as_of, sum(available) AS available
                       FROM p WHERE on_hand IS NULL AND available IS NOT NULL GROUP BY ALL)
        QUALIFY row_number() OVER (PARTITION BY system, sku, location ORDER BY as_of DESC) = 1),
    oversell AS (
        SELECT pb.sku, pb.location, pb.system AS other_system, 'oversell_risk' AS class,
               coalesce(a.atp, 0) AS record_qty, pb.available AS other_qty, pb.available - coalesce(a.atp, 0) AS delta,
               NULL::BIGINT AS raw_delta, NULL::BIGINT AS explained_qty
        FROM published pb LEFT JOIN atp a USING (sku, location)
        WHERE pb.available > coalesce(a.atp, 0))
    SELECT sku, location, other_system, class, record_qty, other_qty, delta, raw_delta,
           CASE class WHEN 'in_transit' THEN CASE WHEN abs(delta) = inbound THEN inbound WHEN abs(delta) = outbound THEN outbound ELSE inbound + outbound END
                      WHEN 'timing' THEN raw_delta - delta END AS explained_qty
    FROM classified WHERE class IS NOT NULL
    UNION ALL SELECT * FROM oversell
    ORDER BY ALL
    """
    return con.execute(sql).fetchall()
