"""Exceptions instead of silent divergence: alert thresholds, their evaluation, `alerts.jsonl`.

Thresholds come from an optional `alerts:` section of the config (DESIGN.md §4, §7). Every rule
is a maximum: it fires when the observed value is strictly greater than the threshold, so a
value exactly at the threshold does not fire.

```yaml
alerts:
  unexplained_value_per_location: 2500      # Σ|value_delta| of unexplained classes per location
  oversell_units_per_sku: {max: 5, severity: critical}   # Σ excess units over locations, channels
  discrepancy_age_days: 3                   # any open discrepancy older than this (age_days)
  source_lag_hours: {max: 6, by_system: {store: 12, commerce: 1}}  # cut-off - latest as-of
```

A rule is a number (the maximum) or a mapping `{max: N, severity: info|warning|critical}`;
`source_lag_hours` also takes `by_system: {system: N}` (a positions system or an availability
channel), which overrides `max` for that system. A rule that is absent is not checked.

Observed values, per rule (`subject` is what the alert is about):

| rule | subject | observed |
|---|---|---|
| `unexplained_value_per_location` | location (`location currency` when a location books several) | Σ abs(value_delta) of `missing_in_other`, `missing_in_record`, `qty_mismatch`, rounded to cents |
| `oversell_units_per_sku` | sku | Σ excess units of `oversell_risk` over its locations and channels |
| `discrepancy_age_days` | `sku/location/other_system/class` | age_days of a discrepancy not `timing` / `within_tolerance` |
| `source_lag_hours` | `source/location` | hours from the latest as-of to the cut-off, rounded to 0.01 h (negative: after it); null when a positions / availability source sent nothing |

Worked example (max 2500, DC01 has qty_mismatch -1500.00 and missing_in_other +1000.00 and a
timing row of 9000.00): observed = 1500 + 1000 = 2500.00, not > 2500, no alert; one more cent
of mismatch fires it. Timing is explained by the roll to the cut-off, so it never counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from collections.abc import Collection, Iterator
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines.config import validate
from invrecon.pipelines.discrepancy_sql import NOT_AGED_IN, UNEXPLAINED_IN
from invrecon.schemas import ALERTS
from invrecon.schemas.config import Alerts, AlertsDoc

__all__ = [
    "RULES",
    "Rule",
    "Thresholds",
    "evaluate",
    "load_thresholds",
    "parse_thresholds",
    "thresholds_of",
    "read_jsonl",
    "report_dir",
    "write_jsonl",
]

# rule -> default severity. Money that nobody can explain is what finance signs off on.
RULES = {
    "unexplained_value_per_location": "critical",
    "oversell_units_per_sku": "warning",
    "discrepancy_age_days": "warning",
    "source_lag_hours": "warning",
}


@dataclasses.dataclass(frozen=True)
class Rule:
    """One threshold: fires when observed > `max`."""

    max: float
    severity: str
    by_system: tuple[tuple[str, float], ...] = ()

    def max_for(self, system: str | None) -> float | None:
        """The maximum that applies to `system` (by_system first, then `max`)."""
        for name, value in self.by_system:
            if name == system:
                return value
        return None if math.isnan(self.max) else self.max


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The validated `alerts:` section; a rule that is None is not checked."""

    unexplained_value_per_location: Rule | None = None
    oversell_units_per_sku: Rule | None = None
    discrepancy_age_days: Rule | None = None
    source_lag_hours: Rule | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, r) is not None for r in RULES)


def thresholds_of(section: Alerts | None) -> Thresholds:
    """The thresholds of a validated `alerts:` section (`schemas.config.Alerts`; None: no rules).

    A rule given as a number is its `max`; a rule without `severity` takes the rule's default
    (RULES); `source_lag_hours` given only `by_system` checks only the systems it lists.
    """
    if section is None:
        return Thresholds()
    rules = {}
    for name, default in RULES.items():
        rule = getattr(section, name)
        if rule is not None:
            by_system = tuple(sorted((system, float(hours)) for system, hours in getattr(rule, "by_system", {}).items()))
            rules[name] = Rule(max=math.nan if rule.max is None else float(rule.max), severity=rule.severity or default, by_system=by_system)
    return Thresholds(**rules)


def parse_thresholds(section: Any, *, uri: str = "config") -> Thresholds:
    """Validate an `alerts:` section (None or absent: no rules) as the config's schema does.

    Args:
      section: the YAML value of `alerts`.
      uri: the config file, for error messages.

    Raises:
      ConfigError: naming the key path, e.g. "`alerts.source_lag_hours.by_system.store` must be a
        number, got 'x'".

    Example:
      >>> parse_thresholds({"oversell_units_per_sku": 5}).oversell_units_per_sku
      Rule(max=5.0, severity='warning', by_system=())
    """
    return thresholds_of(validate(AlertsDoc, {"alerts": section}, uri).alerts)


def load_thresholds(cfg) -> Thresholds:
    """The thresholds of a loaded `pipelines.config.Config` (its optional, validated `alerts:` section)."""
    return thresholds_of(cfg.alerts)


def _fired(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[tuple]:
    return con.execute(sql, params).fetchall()


def evaluate(
    con: duckdb.DuckDBPyConnection,
    thresholds: Thresholds,
    *,
    discrepancies: str,
    positions: str | None,
    snapshot_date: dt.date,
    cutoff: dt.datetime | None,
    run_id: str,
    sources: Collection[tuple[str, str | None, str]] = (),
    only: Collection[str] | None = None,
) -> pa.Table:
    """Evaluate every configured rule for one run date and return ALERTS rows.

    Args:
      con: a DuckDB connection on which `discrepancies` / `positions` can be read.
      thresholds: from `load_thresholds`.
      discrepancies: a SQL relation with the DISCREPANCIES columns of `snapshot_date` only
        (e.g. "read_parquet('.../*.parquet')" or a registered table name).
      positions: a SQL relation with POSITION columns (system, source, location, as_of), or None.
      snapshot_date: the run date.
      cutoff: the run date's cut-off (UTC); needed only with `positions`.
      run_id: stamped on every row.
      sources: (name, system, kind) of the configured sources; a positions or availability
        source with no rows at all fires `source_lag_hours` with a null observed value.
      only: evaluate just these rules (the others are skipped).

    Returns:
      A table with the ALERTS schema, sorted by rule and subject.
    """
    checks = {
        "unexplained_value_per_location": lambda rule: _unexplained_value(con, discrepancies, rule),
        "oversell_units_per_sku": lambda rule: _oversell_units(con, discrepancies, rule),
        "discrepancy_age_days": lambda rule: _discrepancy_age(con, discrepancies, rule),
        "source_lag_hours": lambda rule: _source_lag(con, positions, rule, cutoff=cutoff, sources=sources, snapshot_date=snapshot_date),
    }
    rows = []
    for name, check in checks.items():
        if only is not None and name not in only:
            continue
        rule = getattr(thresholds, name)
        if rule is None:
            continue
        for subject, threshold, observed, message in check(rule):
            rows.append({
                "snapshot_date": snapshot_date, "rule": name, "subject": subject, "threshold": threshold,
                "observed": observed, "severity": rule.severity, "message": message, "run_id": run_id,
            })
    rows.sort(key=lambda r: (r["rule"], r["subject"]))
    return pa.Table.from_pylist(rows, schema=ALERTS)


# Each rule: the alerts it fires, as (subject, threshold, observed, message).
Fired = Iterator[tuple[str, float, float | None, str]]


def _unexplained_value(con: duckdb.DuckDBPyConnection, d: str, rule: Rule) -> Fired:
    sql = f"""
        WITH v AS (
            SELECT location, currency, round(sum(abs(value_delta)), 2) AS observed, count(*) AS n
            FROM {d} WHERE class IN ({UNEXPLAINED_IN}) AND value_delta IS NOT NULL GROUP BY ALL)
        SELECT location, currency, observed, n, count(*) OVER (PARTITION BY location) AS currencies
        FROM v WHERE observed > ? ORDER BY location, currency"""
    for location, currency, observed, n, currencies in _fired(con, sql, [rule.max]):
        subject = f"{location} {currency}" if currencies > 1 else location
        yield (subject, rule.max, observed,
               f"{location}: {n} unexplained discrepancies worth {observed:,.2f}{' ' + currency if currency else ''} exceed {rule.max:,.2f}")


def _oversell_units(con: duckdb.DuckDBPyConnection, d: str, rule: Rule) -> Fired:
    sql = f"""
        SELECT sku, sum(delta) AS observed, count(DISTINCT location) AS locations,
               string_agg(DISTINCT other_system, ', ' ORDER BY other_system) AS channels
        FROM {d} WHERE class = 'oversell_risk' GROUP BY sku HAVING sum(delta) > ? ORDER BY sku"""
    for sku, observed, locations, channels in _fired(con, sql, [rule.max]):
        yield (sku, rule.max, float(observed),
               f"{sku}: {observed} units published above ATP at {locations} location(s) by {channels} (max {rule.max:g})")


def _discrepancy_age(con: duckdb.DuckDBPyConnection, d: str, rule: Rule) -> Fired:
    sql = f"""
        SELECT sku, location, other_system, class, age_days, first_seen, value_delta
        FROM {d} WHERE class NOT IN ({NOT_AGED_IN}) AND age_days > ?
        ORDER BY sku, location, other_system, class"""
    for sku, location, other, klass, age, first_seen, value in _fired(con, sql, [rule.max]):
        worth = f", {value:,.2f} at stake" if value is not None else ""
        yield (f"{sku}/{location}/{other}/{klass}", rule.max, float(age),
               f"{sku} at {location}: {klass} against {other} open {age} days since {first_seen}{worth} (max {rule.max:g})")


def _source_lag(con: duckdb.DuckDBPyConnection, positions: str | None, rule: Rule, *, cutoff: dt.datetime | None,
                sources: Collection[tuple[str, str | None, str]], snapshot_date: dt.date) -> Fired:
    if positions is None or cutoff is None:
        return
    sql = f"""
        SELECT source, system, location, max(as_of) AS latest,
               round(date_diff('microsecond', max(as_of), ?::TIMESTAMPTZ) / 3.6e9, 2) AS lag_hours
        FROM {positions} GROUP BY ALL ORDER BY source, location"""
    seen = set()
    for source, system, location, latest, lag in _fired(con, sql, [cutoff]):
        seen.add(source)
        maximum = rule.max_for(system)
        if maximum is not None and lag > maximum:
            yield (f"{source}/{location}", maximum, lag,
                   f"{source} ({system}) at {location}: latest as-of {latest.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC is {lag:.2f} h before the cut-off (max {maximum:g})")
    for name, system, kind in sources:
        maximum = rule.max_for(system)
        if kind in ("positions", "availability") and name not in seen and maximum is not None:
            yield (f"{name}/*", maximum, None, f"{name} ({system}) sent no positions for {snapshot_date}: nothing is known as of the cut-off")


def report_dir(output: str, run_date: dt.date | str) -> str:
    """Folder of a run date's report and its `alerts.jsonl`: `<output>/reports/<run date>`."""
    return f"{output.rstrip('/')}/reports/{run_date}"


def _json_value(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_jsonl(table: pa.Table, path: str) -> None:
    """Write ALERTS rows as JSON Lines, replacing `path` atomically (an empty file: none fired)."""
    text = "".join(json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False, sort_keys=False) + "\n" for row in table.to_pylist())
    fs, fpath = fsspec.core.url_to_fs(path)
    fs.makedirs(fpath.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{fpath}.tmp-{os.getpid()}"
    fs.pipe_file(tmp, text.encode("utf-8"))
    fs.mv(tmp, fpath)


def read_jsonl(path: str) -> list[dict]:
    """Read an `alerts.jsonl` back (for schedulers and tests)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_alerts_jsonl(output: str, staged_alerts: list[str], day: dt.date) -> None:
    """Write `alerts.jsonl` beside the date's report from the run's staged alerts (a small file)."""
    tables = []
    for url in staged_alerts:
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            tables.append(pq.read_table(f).cast(ALERTS))
    table = pa.concat_tables(tables) if tables else ALERTS.empty_table()
    table = table.sort_by([("rule", "ascending"), ("subject", "ascending")])
    write_jsonl(table, f"{report_dir(output, day)}/alerts.jsonl")
