"""Settle a run inside the Beam graph: age its discrepancies, raise its alerts, sum it up.

The last step of `invrecon batch`'s graph, one element on one worker, after every table is
staged (the staged files' names arrive as side inputs, so it runs once they are complete). It
works with DuckDB straight on the staged Parquet and on the published history (the files the
latest commits name, listed by the launcher), through fsspec for object storage, so its memory
is DuckDB's, not the run's:

1. `first_seen` / `age_days` of the staged discrepancies (`discrepancy_sql.aging_sql`), over the
   succeeded run dates; a backfill or a re-run that changes later dates' streaks re-ages them
   (their discrepancies and `discrepancy_age_days` alerts are staged as `snapshot_date=L--...`
   files, published with this run and owned by those dates);
2. the alert rules (`pipelines.alerts.evaluate`) into the staged `alerts`;
3. `_summary.json`: conservation counts per source, discrepancies per class, value at stake,
   alerts fired, re-aged dates — the small file the launcher finishes from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator

import apache_beam as beam
import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import alerts
from invrecon.pipelines.discrepancy_sql import AGE_KEY, AT_STAKE, VALUE_SUMS, aging_sql
from invrecon.pipelines.warehouse import register_output
from invrecon.schemas import ALERTS, DISCREPANCIES

__all__ = ["History", "SettleRun", "duckdb_connection", "parquet_relation"]


def duckdb_connection(*urls: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read (and write) the fsspec URLs among `urls`."""
    con = duckdb.connect()
    for url in urls:  # the staging folder and the history may share a filesystem: registered once
        register_output(con, url)
    return con


def parquet_relation(paths: list[str] | str, *, columns: str = "*") -> str:
    """SQL reading Parquet `paths` (a glob or a list of URLs)."""
    if isinstance(paths, str):
        return f"(SELECT {columns} FROM read_parquet('{paths}', hive_partitioning = false, union_by_name = true))"
    quoted = ", ".join(f"'{p}'" for p in paths)
    return f"(SELECT {columns} FROM read_parquet([{quoted}], hive_partitioning = false, union_by_name = true))"


def _write(table: pa.Table, url: str) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")


@dataclasses.dataclass(frozen=True)
class History:
    """What the published outputs hold that this run's ages and alerts depend on (from the commits).

    Args:
      run_dates: the other succeeded run dates.
      discrepancies: URLs of the live discrepancy files of those dates.
      later_alerts: later run date -> URLs of its live alert files.
      later_run_ids: later run date -> its run id.
    """

    run_dates: tuple[dt.date, ...] = ()
    discrepancies: tuple[str, ...] = ()
    later_alerts: tuple[tuple[dt.date, tuple[str, ...]], ...] = ()
    later_run_ids: tuple[tuple[dt.date, str], ...] = ()


class SettleRunFn(beam.DoFn):
    """Steps 1-3 of the module docstring, for one run."""

    def __init__(self, *, staging: str, run_id: str, run_date: dt.date, cutoff: dt.datetime, thresholds, sources: tuple, history: History):
        self.staging, self.run_id, self.run_date, self.cutoff = staging, run_id, run_date, cutoff
        self.thresholds, self.sources, self.history = thresholds, sources, history

    def process(self, _, counts: list, *written: list) -> Iterator[str]:
        con = duckdb_connection(self.staging, *self.history.discrepancies)
        conserved = _conservation(counts, [s[0] for s in self.sources])
        reaged = self._age(con, reage_later=all(c["conserved"] for c in conserved))
        fired = self._alerts(con, reaged)
        staged = parquet_relation(f"{self.staging}/discrepancies/*.parquet")
        classes = dict(con.execute(f"SELECT class, count(*) FROM {staged} GROUP BY 1 ORDER BY 1").fetchall())
        gross, net = con.execute(f"SELECT {VALUE_SUMS['gross_value']}, {VALUE_SUMS['net_value']} FROM {staged} WHERE {AT_STAKE}").fetchall()[0]
        summary = {
            "counts": conserved, "classes": classes, "value_at_stake": float(gross), "net_value": float(net),
            "alerts": fired, "reaged": [d.isoformat() for d in reaged],
            "quarantined_by_reason": sorted([src, kind.split(":", 1)[1], n] for kind, src, n in _summed(counts) if kind.startswith("quarantined:")),
        }
        fs, path = fsspec.core.url_to_fs(f"{self.staging}/_summary.json")
        fs.pipe_file(path, json.dumps(summary).encode())
        yield f"{self.staging}/_summary.json"

    def _age(self, con: duckdb.DuckDBPyConnection, *, reage_later: bool) -> list[dt.date]:
        key = ", ".join(AGE_KEY)
        unaged = parquet_relation(f"{self.staging}/discrepancies_unaged/*.parquet")
        dates = ", ".join(f"(DATE '{d}')" for d in (*self.history.run_dates, self.run_date))
        con.execute(f"CREATE TEMP TABLE age_dates AS SELECT * FROM (VALUES {dates}) v(run_date)")
        if self.history.discrepancies:
            hist = parquet_relation(list(self.history.discrepancies), columns=f"snapshot_date, {key}, first_seen, age_days")
            # A row's age depends only on its own key's rows: the keys open today or later.
            con.execute(f"""
                CREATE TEMP TABLE age_rows AS
                WITH h AS {hist},
                wanted AS (SELECT DISTINCT {key} FROM {unaged}
                           UNION SELECT DISTINCT {key} FROM h WHERE snapshot_date > DATE '{self.run_date}')
                SELECT h.* FROM h SEMI JOIN wanted USING ({key})
                WHERE h.snapshot_date <> DATE '{self.run_date}' AND h.snapshot_date IN (SELECT run_date FROM age_dates)""")
        else:
            con.execute(f"CREATE TEMP TABLE age_rows AS SELECT snapshot_date, {key}, first_seen, age_days FROM {unaged} WHERE false")
        rows = f"(SELECT snapshot_date, {key} FROM age_rows UNION ALL SELECT snapshot_date, {key} FROM {unaged})"
        con.execute(f"CREATE TEMP TABLE aged AS {aging_sql(rows, 'age_dates')}")
        cols = ", ".join(f.name for f in DISCREPANCIES)
        on = " AND ".join(f"d.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
        today = con.sql(f"""
            SELECT d.* REPLACE (a.first_seen AS first_seen, a.age_days AS age_days)
            FROM {unaged} d JOIN aged a ON {on} ORDER BY d.location, d.sku, d.other_system, d.class""").to_arrow_table()
        _write(today.select([f.name for f in DISCREPANCIES]).cast(DISCREPANCIES), f"{self.staging}/discrepancies/part-00000.parquet")
        if not (self.history.discrepancies and reage_later):
            return []
        on_h = " AND ".join(f"h.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
        changed = [r[0] for r in con.execute(f"""
            SELECT DISTINCT h.snapshot_date FROM age_rows h JOIN aged a ON {on_h}
            WHERE h.snapshot_date > DATE '{self.run_date}'
              AND (h.first_seen IS DISTINCT FROM a.first_seen OR h.age_days IS DISTINCT FROM a.age_days)
            ORDER BY 1""").fetchall()]
        hist_all = parquet_relation(list(self.history.discrepancies))
        for later in changed:
            on_w = " AND ".join(f"w.{c} = a.{c}" for c in ("snapshot_date", *AGE_KEY))
            t = con.sql(f"""
                SELECT w.* REPLACE (coalesce(a.first_seen, w.first_seen) AS first_seen, coalesce(a.age_days, w.age_days) AS age_days)
                FROM (SELECT {cols} FROM {hist_all} WHERE snapshot_date = DATE '{later}') w
                LEFT JOIN aged a ON {on_w} ORDER BY w.location, w.sku, w.other_system, w.class""").to_arrow_table()
            _write(t.cast(DISCREPANCIES), f"{self.staging}/discrepancies/snapshot_date={later}--reaged.parquet")
        return changed

    def _alerts(self, con: duckdb.DuckDBPyConnection, reaged: list[dt.date]) -> int:
        fired = alerts.evaluate(
            con, self.thresholds,
            discrepancies=parquet_relation(f"{self.staging}/discrepancies/part-*.parquet"),
            positions=parquet_relation(f"{self.staging}/positions/*.parquet"),
            snapshot_date=self.run_date, cutoff=self.cutoff, run_id=self.run_id, sources=self.sources,
        )
        _write(fired, f"{self.staging}/alerts/part-00000.parquet")
        later_alerts, run_ids = dict(self.history.later_alerts), dict(self.history.later_run_ids)
        for later in reaged:
            disc = parquet_relation(f"{self.staging}/discrepancies/snapshot_date={later}--reaged.parquet")
            age = alerts.evaluate(con, self.thresholds, discrepancies=disc, positions=None, snapshot_date=later,
                                  cutoff=None, run_id=run_ids.get(later, ""), only=("discrepancy_age_days",))
            kept = ALERTS.empty_table()
            if later_alerts.get(later):
                kept = con.sql(f"SELECT {', '.join(f.name for f in ALERTS)} FROM {parquet_relation(list(later_alerts[later]))} "
                               "WHERE rule <> 'discrepancy_age_days'").to_arrow_table().cast(ALERTS)
            _write(pa.concat_tables([kept, age]), f"{self.staging}/alerts/snapshot_date={later}--reaged.parquet")
        return fired.num_rows


def _summed(counts: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    total: dict[tuple[str, str], int] = {}
    for kind, source, n in counts:
        total[(kind, source)] = total.get((kind, source), 0) + n
    return [(k, s, n) for (k, s), n in total.items()]


def _conservation(counts: list[tuple[str, str, int]], sources: list[str]) -> list[dict]:
    """Per source: read = written + quarantined, from ("read" | "written" | "quarantined", source, n)."""
    total: dict[tuple[str, str], int] = {}
    unreadable: dict[str, int] = {}
    for kind, source, n in counts:
        key = (kind.split(":", 1)[0], source)
        total[key] = total.get(key, 0) + n
        if kind in UNREADABLE:
            unreadable[source] = unreadable.get(source, 0) + n
    out = []
    for s in sources:
        r, w, q = (total.get((k, s), 0) for k in ("read", "written", "quarantined"))
        out.append({"source": s, "read": r, "written": w, "quarantined": q, "conserved": r == w + q, "unreadable": unreadable.get(s, 0)})
    return out


# Quarantine counts of records lost with their whole file (the summary says "file unreadable").
UNREADABLE = ("quarantined:unreadable_file", "quarantined:reader_error", "quarantined:not_edi")


@dataclasses.dataclass(kw_only=True)
class SettleRun(beam.PTransform):
    """Run `SettleRunFn` once, after the PCollections of staged file names in `written`.

    Configured by keyword only: `SettleRun(staging=..., run_id=..., run_date=..., ...)`.
    """

    staging: str
    run_id: str
    run_date: dt.date
    cutoff: dt.datetime
    thresholds: object
    sources: tuple  # (name, system, kind) of every configured source
    history: History
    written: tuple  # PCollections of staged file names: settle runs after they are complete

    def expand(self, counts):
        written = self.written
        fn = SettleRunFn(staging=self.staging, run_id=self.run_id, run_date=self.run_date, cutoff=self.cutoff,
                         thresholds=self.thresholds, sources=self.sources, history=self.history)
        waits = [beam.pvalue.AsList(w) for w in written]
        return (
            counts.pipeline
            | "Once" >> beam.Create([None])
            | "Settle" >> beam.ParDo(fn, beam.pvalue.AsList(counts), *waits).with_output_types(str)
        )
