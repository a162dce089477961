"""What the analysts' warehouse means: one registry of its relations and columns, units and signs.

`RELATIONS` describes every table and view of `warehouse.duckdb` and every column of each, with
its unit and sign convention (what a row of a published table is, it takes from the table
registry, `schemas.tables`). It is the one source of
- the `COMMENT ON` statements the warehouse is built with (`comment_ddl`, run by
  `pipelines.warehouse` on every (re)build), which any SQL client shows
  (`SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'discrepancies'`);
- `docs/warehouse.md`, the analyst's reference (`render_markdown`, with the column order and
  types read from a built warehouse, so the page shows what DuckDB shows).

It also holds the types the warehouse gives the analyst over the Parquet's own: money as
`DECIMAL(18,4)` (exact sums; the Parquet keeps float64), closed vocabularies as ENUMs
(`MONEY`, `ENUMS`, `TYPED`). Regenerate the page after changing anything here:

    python -m invrecon.pipelines.warehouse_docs --warehouse out/warehouse.duckdb > docs/warehouse.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from invrecon.schemas import DISCREPANCY_CLASSES, EXPLAINED, SEVERITIES, UNEXPLAINED
from invrecon.schemas.tables import TABLES

__all__ = ["ENUMS", "EXAMPLES", "MONEY", "RELATIONS", "TYPED", "Relation", "column_doc", "comment_ddl", "render_markdown"]

# Exact to a hundredth of a cent, up to 10^14 in any currency: sums of it are exact too, where
# float64 prints -11634.490000000002. DuckDB sums DECIMAL(18,4) as DECIMAL(38,4); the views cast
# their totals back, so every money column of the warehouse has this one type.
MONEY = "DECIMAL(18,4)"
# ENUM types of the warehouse: a typo in a filter on them is caught (no row can match it), the
# values sort in their meaning's order (classes as DESIGN §6.4 applies them; info < warning <
# critical), and `SELECT enum_range(NULL::discrepancy_class)` lists them.
ENUMS = {"discrepancy_class": DISCREPANCY_CLASSES, "severity_level": SEVERITIES}
# Columns of the published tables' views typed for the analyst (the Parquet keeps its types).
TYPED = {
    "discrepancies": {"class": "discrepancy_class", "unit_cost": MONEY, "value_delta": MONEY},
    "positions": {"unit_cost": MONEY},
    "items": {"unit_cost": MONEY},
    "dq_results": {"severity": "severity_level"},
    "alerts": {"severity": "severity_level"},
}

EACHES = "eaches"
SIGNED = "eaches, signed"
MONEY_EACH = "money per each, in `currency`"
MONEY_SIGNED = "money in `currency`, signed"
MONEY_GROSS = "money in `currency`, >= 0"
SHARE = "share 0-1"
UTC = "UTC timestamp"
ROWS = "rows"
DAYS = "days"

_UNEXPLAINED = ", ".join(UNEXPLAINED)
_EXPLAINED = ", ".join(EXPLAINED)


@dataclasses.dataclass(frozen=True)
class Relation:
    """One table or view: what a row is, and each column as (unit, meaning); a column given as
    None takes its shared meaning (`SHARED`)."""

    kind: str  # "published" (a view over a published table), "analyst" (a view over those), "internal"
    doc: str
    columns: dict[str, tuple[str, str] | None]

    def __post_init__(self) -> None:
        if self.kind not in ("published", "analyst", "internal"):
            raise ValueError(f"`kind` must be published, analyst or internal, got {self.kind!r}")


# Meanings shared by every relation that has the column (a relation may say more of its own).
SHARED: dict[str, tuple[str, str]] = {
    "snapshot_date": ("date", "The run date D: figures are as of its cut-off, D 23:59:59.999 in the config's time zone."),
    "run_date": ("date", "The run date D whose run wrote the row."),
    "sku": ("", "Canonical SKU (the SKU crosswalk's `sku`; join `items` on it)."),
    "location": ("", "Canonical location (the location crosswalk's `location`; join `locations` on it)."),
    "location_type": ("", "The location's type from the location crosswalk (e.g. dc, store)."),
    "other_system": ("", "The system compared with the book (the record system); for oversell_risk the availability channel."),
    "class": ("", "What the difference is (ENUM discrepancy_class). Unexplained: " + _UNEXPLAINED + "; explained: " + _EXPLAINED
              + "; within_tolerance is accepted; oversell_risk is channel exposure, not a book difference."),
    "currency": ("", "ISO currency of the row's money (the items master's). Never add money across currencies."),
    "first_seen": ("date", "First run date of the current streak of consecutive run dates on which this (sku, location, other_system, class) was open; a run date where it was not open breaks the streak, a day without a run does not."),
    "age_days": (DAYS, "Calendar days from first_seen to snapshot_date (0 on its first day)."),
    "run_id": ("", "The run: its date and a hash of the config and every input file (two runs with equal ids read the same inputs)."),
    "source": ("", "The configured source (config `sources[].name`) the record came from."),
    "file": ("", "The input file (URL) the record came from."),
    "locator": ("", "Where in the file: `line N`, or the EDI segment with its interchange / group / transaction control numbers."),
    "rows": (ROWS, "Number of rows counted."),
    "delta": (SIGNED, "other_qty - record_qty, a missing side counting as 0: other minus book. Positive: the other system counts more than the book; negative: fewer."),
    "value_delta": (MONEY_SIGNED, "delta * unit_cost: other minus book in money. Negative: the book holds more than the other system counts."),
    "unit_cost": (MONEY_EACH, "Cost of one each: the items master's, else the record system's."),
}

def _table(name: str, columns: dict[str, tuple[str, str] | None]) -> Relation:
    """A published table's relation: what one row is comes from the table registry (`schemas.tables`)."""
    return Relation("published", TABLES[name].doc, columns)


_PUBLISHED: dict[str, Relation] = {
    "inventory_snapshot": _table("inventory_snapshot", {
        "snapshot_date": None, "sku": None, "location": None, "location_type": None,
        "on_hand": (EACHES, "On hand in the record system (the book), rolled to the cut-off; null when the book has no record of the key."),
        "reserved": (EACHES, "Reserved in the book, rolled to the cut-off."),
        "atp": (EACHES, "Available to promise: max(0, on_hand - reserved - safety_stock)."),
        "qty_by_system": (EACHES, "Each positions system's on hand rolled to the cut-off, by system (the book included): `qty_by_system['wms']`."),
        "systems_reporting": ("", "The systems with a position for the key, sorted."),
        "status": ("", "matched (every system agrees), discrepant (a discrepancies row exists), record_only (only the book reports it), not_in_record (the book has no record)."),
        "run_id": None,
    }),
    "discrepancies": _table("discrepancies", {
        "snapshot_date": None, "sku": None, "location": None, "location_type": None,
        "record_system": ("", "The system of record (finance's book): the config's `record_system`."),
        "other_system": None, "class": None,
        "record_qty": (EACHES, "The book's quantity rolled to the cut-off (null: the book has no record). For oversell_risk: ATP."),
        "other_qty": (EACHES, "The other system's quantity rolled to the cut-off (null: it has no record). For oversell_risk: the quantity the channel publishes."),
        "delta": (SIGNED, SHARED["delta"][1] + " For oversell_risk: the units published above ATP (> 0)."),
        "raw_record_qty": (EACHES, "The book's quantity as reported at its as-of time, before rolling to the cut-off."),
        "raw_other_qty": (EACHES, "The other system's quantity as reported at its as-of time, before rolling."),
        "raw_delta": (SIGNED, "raw_other_qty - raw_record_qty: the difference as reported, before rolling (other minus book); null for oversell_risk."),
        "tolerance": (EACHES, "The allowed |delta|: max(abs, pct * |record_qty|) of the first matching config tolerance rule."),
        "explained_qty": (EACHES, "Units the pipeline explains: for in_transit the open shipment quantity, for timing raw_delta - delta (what rolling to the cut-off explained); null otherwise."),
        "unit_cost": None, "value_delta": None, "currency": None, "first_seen": None, "age_days": None,
        "record_lineage": ("", "Where the book's figure came from: file and line, or EDI segment and control numbers."),
        "other_lineage": ("", "Where the other system's figure came from: file and line, or EDI segment and control numbers."),
        "run_id": None,
    }),
    "in_transit": _table("in_transit", {
        "shipment_id": ("", "The shipment (ASN 856 / DESADV / 943 id)."), "sku": None,
        "from_location": ("", "Canonical location it left (null: outside the network)."),
        "to_location": ("", "Canonical location it goes to (null: outside the network)."),
        "qty": (EACHES, "Quantity shipped and not yet received."),
        "shipped_at": (UTC, "When it was shipped."), "expected_at": (UTC, "When it is expected (null: not said)."),
        "source": None, "file": None, "locator": None, "snapshot_date": None,
    }),
    "positions": _table("positions", {
        "system": ("", "The system that reported it (config `sources[].system`)."), "sku": None, "location": None,
        "as_of": (UTC, "When the system's figure was true."),
        "on_hand": (EACHES, "On hand as reported (null for availability feeds)."),
        "reserved": (EACHES, "Reserved as reported (null: not reported)."),
        "available": (EACHES, "Availability published by a channel (availability feeds; null otherwise)."),
        "uom_source": ("", "The unit of measure in the source (e.g. EA, CS, DZ)."),
        "units_per_uom": (EACHES, "Eaches per source unit: the figures above are already multiplied out."),
        "unit_cost": ("money per each", "Cost per each as the source sent it (null: not sent), in the item's currency (the items master's)."),
        "source": None, "file": None, "locator": None, "snapshot_date": None,
    }),
    "movements": _table("movements", {
        "event_id": ("", "The event's id (a repeat is quarantined as duplicate_event)."),
        "system": ("", "The system that emitted it (lineage; positions of every system roll with it)."),
        "event_type": ("", "receipt, shipment, sale, return, transfer_out, transfer_in, adjustment, count, reservation or release."),
        "sku": None, "location": None,
        "qty": (SIGNED, "Effect on on hand: + receipt, return, transfer_in; - sale, shipment, transfer_out; adjustment its own sign; for count the absolute counted quantity; 0 for reservation and release."),
        "reserved_delta": (SIGNED, "Effect on reserved: + reservation, - release; 0 otherwise."),
        "occurred_at": (UTC, "When it happened (event time)."),
        "reference": ("", "The emitter's reference (order, transfer, document number)."),
        "counterparty_location": ("", "The other end of a transfer (canonical location), if any."),
        "source": None, "file": None, "locator": None,
        "run_date": ("date", "The latest run date that applied the event."),
    }),
    "quarantine": _table("quarantine", {
        "run_id": None, "source": None, "file": None, "locator": None,
        "reason_code": ("", "Why, as a code: e.g. unmapped_sku, unmapped_location, bad_quantity, bad_check_digit, duplicate_row, duplicate_event, future_event, malformed_row."),
        "reason": ("", "Why, in words: the field and the value at fault."),
        "raw": ("", "The record as read."),
        "run_date": None,
    }),
    "dq_results": _table("dq_results", {
        "run_id": None, "run_date": None, "source": None,
        "suite": ("", "The expectation suite."), "expectation": ("", "The expectation (its GX type)."),
        "column": ("", "The column checked (null: a table-level check)."),
        "success": ("", "Whether the expectation held."),
        "element_count": (ROWS, "Records checked."), "unexpected_count": (ROWS, "Records that failed it."),
        "severity": ("", "ENUM severity_level: critical fails the run's gate (exit 3) unless only row-level; warning is recorded and the run goes on."),
        "details": ("", "JSON with the check's parameters and observed values."),
    }),
    "dq_metrics": _table("dq_metrics", {
        "run_id": None, "run_date": None, "source": None,
        "metric": ("", "The metric's name."), "value": (ROWS, "Its value (a row count)."),
    }),
    "alerts": _table("alerts", {
        "snapshot_date": None,
        "rule": ("", "unexplained_value_per_location, oversell_units_per_sku, discrepancy_age_days or source_lag_hours."),
        "subject": ("", "What crossed it: a location; a sku; sku/location/other_system/class; source/location."),
        "threshold": ("the rule's", "The configured maximum, in the rule's unit: money (unexplained_value_per_location), eaches (oversell_units_per_sku), days (discrepancy_age_days), hours (source_lag_hours). DOUBLE: one column holds several units."),
        "observed": ("the rule's", "The observed value in the same unit; the alert fires when observed > threshold. Null: a source sent nothing."),
        "severity": ("", "ENUM severity_level (info < warning < critical), from the config or the rule's default."),
        "message": ("", "The alert in words."), "run_id": None,
    }),
    "runs": _table("runs", {
        "run_id": None, "run_date": None,
        "config_sha256": ("", "SHA-256 of the config file."),
        "inputs": ("", "Every input file: source, uri, size (bytes), sha256."),
        "counts": (ROWS, "Per source: read, written, quarantined, conserved (read = written + quarantined)."),
        "status": ("", "succeeded; dq_failed (the gate failed: only quarantine, dq_results, dq_metrics and runs were published); failed (conservation violated)."),
        "started": (UTC, "When the run started."), "finished": (UTC, "When it finished."),
        "runner": ("", "The Beam runner."), "message": ("", "Why it failed (null when it succeeded)."),
    }),
    "items": _table("items", {
        "sku": None,
        "description": ("", "The items master's description (null: not in the master)."),
        "category": ("", "The items master's category."),
        "abc_class": ("", "The items master's ABC class (tolerance rules may match on it)."),
        "unit_cost": (MONEY_EACH, "The items master's cost per each (what discrepancies are valued at)."),
        "currency": None,
        "safety_stock": (EACHES, "Units held back from ATP (0 when the master has none)."),
        "in_master": ("", "Whether the items master lists the SKU (false: only the crosswalk names it)."),
        "ids": ("", "The crosswalk ids that map to it: id_type, id_value (GTINs as GTIN-14), units_per_id (eaches per id, e.g. a case GTIN)."),
        "run_date": ("date", "The run date this row's version comes from (the latest that had the SKU)."),
    }),
    "locations": _table("locations", {
        "location": None,
        "location_type": ("", "Its type (the first crosswalk row's), as on the facts."),
        "codes": ("", "Each system's code for it: system, source_location."),
        "run_date": ("date", "The run date this row's version comes from."),
    }),
}

_ANALYST: dict[str, Relation] = {
    "discrepancy_summary": Relation("analyst", "One row per snapshot_date, location, other_system, class, currency: how many discrepancies, units and value.", {
        "snapshot_date": None, "location": None, "location_type": None, "other_system": None, "class": None, "currency": None, "rows": None,
        "net_units": (SIGNED, "Σ delta: other minus book, a surplus nets against a shortage."),
        "abs_units": (EACHES, "Σ |delta|: never netted."),
        "net_value": (MONEY_SIGNED, "Σ value_delta: other minus book."),
        "gross_value": (MONEY_GROSS, "Σ |value_delta|: the value at stake, never nets a surplus against a shortage."),
    }),
    "inventory_record_accuracy": Relation("analyst", "One row per snapshot_date, location: inventory record accuracy, the share of (sku, location) keys whose book figure is right.", {
        "snapshot_date": None, "location": None, "location_type": None,
        "keys": ("keys", "(sku, location) keys in inventory_snapshot."),
        "exact_keys": ("keys", "Keys no compared system differs from by a unit nothing explains (in_transit is explained; oversell_risk is left out)."),
        "within_tolerance_keys": ("keys", "Keys without an unexplained class (" + _UNEXPLAINED + ")."),
        "ira_strict": (SHARE, "exact_keys / keys, 4 decimals."),
        "ira_tolerance": (SHARE, "within_tolerance_keys / keys, 4 decimals."),
    }),
    "absolute_deviation": Relation("analyst", "One row per snapshot_date, location: Σ|variance| / Σ book units, never netted (variance: delta of every count comparison but in_transit and oversell_risk).", {
        "snapshot_date": None, "location": None, "location_type": None,
        "keys": ("keys", "(sku, location) keys in inventory_snapshot."),
        "record_units": (EACHES, "Σ |on_hand| of the book."),
        "abs_variance_units": (EACHES, "Σ |delta|."),
        "net_variance_units": (SIGNED, "Σ delta: other minus book."),
        "abs_deviation": (SHARE, "abs_variance_units / record_units, 6 decimals (null when record_units is 0)."),
    }),
    "value_variance": Relation("analyst", "One row per snapshot_date, location, currency: value at stake gross and net, in all and in the unexplained and explained classes (oversell_risk left out).", {
        "snapshot_date": None, "location": None, "location_type": None, "currency": None, "rows": None,
        "gross_value": (MONEY_GROSS, "Σ |value_delta|."),
        "net_value": (MONEY_SIGNED, "Σ value_delta: other minus book."),
        "unexplained_gross_value": (MONEY_GROSS, "Σ |value_delta| of " + _UNEXPLAINED + "."),
        "unexplained_net_value": (MONEY_SIGNED, "Σ value_delta of " + _UNEXPLAINED + "."),
        "explained_gross_value": (MONEY_GROSS, "Σ |value_delta| of " + _EXPLAINED + "."),
    }),
    "oversell_risk": Relation("analyst", "One row per snapshot_date, sku, location, channel where a channel publishes more than ATP.", {
        "snapshot_date": None, "sku": None, "location": None, "location_type": None,
        "channel": ("", "The availability channel (its system)."),
        "atp": (EACHES, "Available to promise from the book."),
        "published": (EACHES, "What the channel publishes."),
        "excess_units": (EACHES, "published - atp (> 0)."),
        "excess_value": (MONEY_GROSS, "excess_units * unit_cost."),
        "unit_cost": None, "currency": None, "first_seen": None, "age_days": None,
    }),
    "oversell_risk_by_sku": Relation("analyst", "One row per snapshot_date, sku oversold anywhere.", {
        "snapshot_date": None, "sku": None,
        "locations": ("locations", "Locations where a channel publishes more than ATP."),
        "channels": ("", "The channels that do, sorted."),
        "excess_units": (EACHES, "Σ published - atp over locations and channels."),
        "excess_value": (MONEY_GROSS, "Σ excess value."),
        "max_age_days": (DAYS, "The oldest streak's age_days."),
    }),
    "discrepancy_aging": Relation("analyst", "One row per open discrepancy worth aging (every class but timing and within_tolerance), with its age bucket.", {
        "snapshot_date": None, "sku": None, "location": None, "location_type": None, "other_system": None, "class": None,
        "first_seen": None, "age_days": None,
        "age_bucket": ("", "0, 1-2, 3-6, 7-13, 14-29 or 30+ days."),
        "age_bucket_order": ("", "The bucket's rank 0-5, to sort buckets by age."),
        "delta": None, "value_delta": None, "currency": None,
    }),
    "dq_trend": Relation("analyst", "One row per run_date, source: conservation counts beside the expectation results, to see a source getting worse.", {
        "run_date": None, "source": None,
        "records_read": (ROWS, "Records read."), "records_written": (ROWS, "Records written (valid)."),
        "records_quarantined": (ROWS, "Records quarantined."),
        "quarantine_rate": (SHARE, "records_quarantined / records_read, 4 decimals."),
        "expectations": ("expectations", "Expectations evaluated."),
        "expectations_failed": ("expectations", "Expectations that failed."),
        "critical_failed": ("expectations", "Failed expectations of severity critical."),
        "unexpected_rate": (SHARE, "Σ unexpected_count / Σ element_count, 4 decimals."),
    }),
    "quarantine_summary": Relation("analyst", "One row per run_date, source, reason_code: rejected records by reason.", {
        "run_date": None, "source": None, "reason_code": ("", "Why, as a code (see quarantine)."), "rows": None,
    }),
}

_INTERNAL: dict[str, Relation] = {
    "_live": Relation("internal", "Internal: the files the latest commit of each (table, partition, owner) names; the table views read only these, so a reader never sees a run half published.", {
        "table": ("", "The published table."), "partition": ("", "Its partition folder (`<column>=<date>`)."),
        "owner": ("date", "The run date that owns the files."), "file": ("", "A file, relative to the output folder."),
    }),
    "_invrecon_meta": Relation("internal", "Internal: how this file was built (ddl_sha256: the view definitions; output: the output folder the views read).", {
        "key": ("", "ddl_sha256 or output."), "value": ("", "Its value."),
    }),
}

RELATIONS: dict[str, Relation] = {**_PUBLISHED, **_ANALYST, **_INTERNAL}

# Example queries of docs/warehouse.md; the tests run each on the committed world's warehouse.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Where is the money, and how much of it can nobody explain?", """
SELECT location, class, rows, gross_value, net_value FROM discrepancy_summary
WHERE snapshot_date = DATE '2026-11-30' ORDER BY gross_value DESC;"""),
    ("Discrepancies with item and location attributes (the dimensions)", """
SELECT d.sku, i.description, i.category, i.abc_class, d.location, l.location_type,
       d.other_system, d.class, d.delta, d.value_delta, d.currency
FROM discrepancies d
LEFT JOIN items i USING (sku)
LEFT JOIN locations l USING (location)
WHERE d.snapshot_date = DATE '2026-11-30' AND d.class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')
ORDER BY abs(d.value_delta) DESC;"""),
    ("Unexplained value by ABC class and location type (exact decimals)", """
SELECT i.abc_class, l.location_type, d.currency, sum(abs(d.value_delta)) AS gross_value, sum(d.value_delta) AS net_value
FROM discrepancies d JOIN items i USING (sku) JOIN locations l USING (location)
WHERE d.class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')
GROUP BY ALL ORDER BY gross_value DESC;"""),
    ("Record accuracy per store over the last runs", """
SELECT snapshot_date, location, ira_strict, ira_tolerance FROM inventory_record_accuracy
WHERE location_type = 'store' ORDER BY location, snapshot_date;"""),
    ("Oldest open discrepancies", """
SELECT sku, location, other_system, class, first_seen, age_days, value_delta FROM discrepancy_aging
WHERE snapshot_date = DATE '2026-11-30' ORDER BY age_days DESC, abs(value_delta) DESC LIMIT 20;"""),
    ("Channels that oversell, per SKU", """
SELECT sku, channels, excess_units, excess_value FROM oversell_risk_by_sku
WHERE snapshot_date = DATE '2026-11-30' ORDER BY excess_units DESC;"""),
    ("Alerts, most severe first", """
SELECT rule, subject, severity, observed, threshold, message FROM alerts
WHERE snapshot_date = DATE '2026-11-30' ORDER BY severity DESC, rule;"""),
    ("Is a source getting worse?", """
SELECT run_date, source, quarantine_rate, expectations_failed FROM dq_trend ORDER BY source, run_date;"""),
    ("Which SKU does a GTIN or ERP material number map to?", """
SELECT sku, description, id.id_type, id.id_value, id.units_per_id
FROM (SELECT sku, description, unnest(ids) AS id FROM items) WHERE id.id_value = '00070000000003';"""),
    ("What a column means (the comments any SQL client shows)", """
SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = 'discrepancies';"""),
)


def column_doc(relation: str, column: str) -> tuple[str, str]:
    """(unit, meaning) of a column of a relation of RELATIONS."""
    spec = RELATIONS[relation].columns[column]
    return SHARED[column] if spec is None else spec


def _comment(unit: str, doc: str) -> str:
    return f"{doc} Unit: {unit}." if unit else doc


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_ddl() -> list[str]:
    """The COMMENT ON statements of every type, table, view and column of the registry."""
    out = [f"COMMENT ON TYPE {name} IS {_quote('ENUM of ' + ', '.join(values) + ' (in this order).')}" for name, values in ENUMS.items()]
    for name, rel in RELATIONS.items():
        kind = "TABLE" if name == "_invrecon_meta" else "VIEW"
        out.append(f"COMMENT ON {kind} {name} IS {_quote(rel.doc)}")
        for column in rel.columns:
            out.append(f'COMMENT ON COLUMN {name}."{column}" IS {_quote(_comment(*column_doc(name, column)))}')
    return out


_INTRO = """\
# The warehouse: an analyst's reference

<!-- Generated from pipelines/warehouse_docs.py (the registry the warehouse's COMMENT ON
statements come from); do not edit by hand. Regenerate with
  python -m invrecon.pipelines.warehouse_docs --warehouse out/warehouse.duckdb > docs/warehouse.md
-->

`warehouse.duckdb` holds no data: its views read the Parquet files the runs published (through
the commit log, so a query never sees a run half written). Open it read-only; a run swaps in a
new file when the view definitions change and never waits for a reader.

    invrecon sql --config fixtures/world/config.yaml "SELECT * FROM discrepancy_summary"
    invrecon sql --config CFG --csv "SELECT * FROM discrepancies" > discrepancies.csv
    duckdb -readonly out/warehouse.duckdb
    python -c "import duckdb; print(duckdb.connect('out/warehouse.duckdb', read_only=True).sql('FROM items'))"

`invrecon sql --config CFG` opens the warehouse the batch writes for that config
(`<output>/warehouse.duckdb`). For an output in object storage the batch keeps no warehouse;
make a local one over it: `invrecon sql --warehouse local.duckdb --output s3://bucket/out "..."`.

Every table, view and column carries its meaning, unit and sign as a comment:
`SELECT table_name, column_name, data_type, comment FROM duckdb_columns()`,
`SELECT view_name, comment FROM duckdb_views()`.

## Conventions

- **Money** is `DECIMAL(18,4)` in the item's `currency` (the items master's): exact, so a sum
  prints `-11634.4900`, not `-11634.490000000002`. The Parquet files keep float64; the views cast
  each row to four decimals, and every total a view computes is exact and typed `DECIMAL(18,4)`
  again. Python clients get `decimal.Decimal` (`CAST(x AS DOUBLE)` for floats). Never add money
  across currencies: group by `currency`.
- **Sign**: `delta = other_qty - record_qty` and `value_delta = delta * unit_cost`, *other minus
  book*, the book being the config's `record_system`. Positive: the other system counts more than
  the book; negative: the book holds more than the other system counts. `net_*` columns add signed
  values (a surplus nets against a shortage); `gross_*` and `abs_*` add absolute values and never
  net. For `oversell_risk`, `delta` is the excess a channel publishes over ATP (always > 0).
- **Quantities** are whole eaches (`BIGINT`), after unit-of-measure conversion (12.5 DZ = 150).
- **Dates**: `snapshot_date` / `run_date` is the run date D, whose cut-off is D 23:59:59.999 in
  the config's time zone; timestamps are UTC.
- **Classes** (`class`, ENUM `discrepancy_class`, in the order they are applied): {classes}.
  Unexplained: {unexplained}; explained: {explained}; `within_tolerance` is accepted;
  `oversell_risk` is channel exposure, not a book difference (value and accuracy views leave it out).
  ENUMs sort in this order, not alphabetically; filter them with plain strings (`class = 'qty_mismatch'`).
- **Severity** (`severity`, ENUM `severity_level`): {severities}, in increasing order
  (`ORDER BY severity DESC` puts critical first).
- **Dimensions**: `items` (one row per SKU) and `locations` (one row per location) are published by
  every run from its config's items master and crosswalks; each row is the latest run date's
  version. Join them with `LEFT JOIN items USING (sku)` / `LEFT JOIN locations USING (location)`:
  a SKU that only the crosswalk names has null master fields (`in_master` false).
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type_name(data_type: str) -> str:
    if data_type.startswith("ENUM("):
        return next((name for name, values in ENUMS.items() if data_type == "ENUM(" + ", ".join(f"'{v}'" for v in values) + ")"), "ENUM")
    return data_type


def _section(con, name: str) -> list[str]:
    rel = RELATIONS[name]
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [name]).fetchall()
    lines = [f"### `{name}`", "", rel.doc, "", "| column | type | unit | meaning |", "|---|---|---|---|"]
    for column, data_type in columns:
        unit, doc = column_doc(name, column)
        lines.append(f"| `{column}` | {_md(_type_name(data_type))} | {_md(unit)} | {_md(doc)} |")
    return lines + [""]


def render_markdown(con) -> str:
    """docs/warehouse.md: the conventions, every relation of RELATIONS with the column order and
    types of the warehouse `con` (a connection to a built warehouse), and the EXAMPLES."""
    def names(values) -> str:
        return ", ".join(f"`{v}`" for v in values)

    lines = [_INTRO.format(classes=names(DISCREPANCY_CLASSES), unexplained=names(UNEXPLAINED), explained=names(EXPLAINED),
                           severities=names(SEVERITIES))]
    for kind, title in (("published", "Published tables"), ("analyst", "Analyst views"), ("internal", "Internals")):
        lines += [f"## {title}", ""]
        for name, rel in RELATIONS.items():
            if rel.kind == kind:
                lines += _section(con, name)
    lines += ["## Example queries", ""]
    for title, sql in EXAMPLES:
        lines += [f"### {title}", "", "```sql", sql.strip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print docs/warehouse.md from the registry and a built warehouse (its column order and types)."""
    parser = argparse.ArgumentParser(prog="python -m invrecon.pipelines.warehouse_docs", description=main.__doc__)
    parser.add_argument("--warehouse", required=True, help="a warehouse.duckdb built by this version")
    args = parser.parse_args(argv)
    from invrecon.pipelines.warehouse import connect

    con = connect(args.warehouse)
    try:
        sys.stdout.write(render_markdown(con))
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
