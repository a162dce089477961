"""Pyarrow schemas of the canonical records and of every output table.

These are the contract of DESIGN.md §5 and §7. Transforms import this module; it imports
nothing of the project. Timestamps are UTC with microsecond precision everywhere, quantities
are signed 64-bit eaches (fractional eaches do not exist in a store), money is float64 in the
item's currency.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "DQ_METRICS",
    "ALERTS",
    "DISCREPANCIES",
    "COMMITS",
    "DISCREPANCY_CLASSES",
    "EXPLAINED",
    "NOT_AGED",
    "UNEXPLAINED",
    "DQ_RESULTS",
    "EVENT_TYPES",
    "INVENTORY_SNAPSHOT",
    "IN_TRANSIT",
    "ITEMS",
    "LOCATIONS",
    "MOVEMENT",
    "POSITION",
    "POSITION_CHANGES",
    "QUARANTINE",
    "RUNS",
    "SEVERITIES",
]

TS = pa.timestamp("us", tz="UTC")

# Lineage travels with every canonical record so a discrepancy can be traced back to the
# file and line (or EDI segment and control numbers) it came from.
LINEAGE_FIELDS = [
    pa.field("source", pa.string(), nullable=False),
    pa.field("file", pa.string()),
    pa.field("locator", pa.string()),  # "line 12" or "segment 40 (ISA 000000001/GS 1/ST 0001)"
]

POSITION = pa.schema(
    [
        pa.field("system", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("as_of", TS, nullable=False),
        pa.field("on_hand", pa.int64()),
        pa.field("reserved", pa.int64()),
        pa.field("available", pa.int64()),
        pa.field("uom_source", pa.string()),
        pa.field("units_per_uom", pa.int64()),
        pa.field("unit_cost", pa.float64()),
        *LINEAGE_FIELDS,
    ]
)

# qty: signed effect on on_hand in eaches; for `count` it is the absolute counted quantity.
MOVEMENT = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("system", pa.string()),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("qty", pa.int64(), nullable=False),
        pa.field("reserved_delta", pa.int64(), nullable=False),
        pa.field("occurred_at", TS, nullable=False),
        pa.field("reference", pa.string()),
        pa.field("counterparty_location", pa.string()),
        *LINEAGE_FIELDS,
    ]
)

IN_TRANSIT = pa.schema(
    [
        pa.field("shipment_id", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("from_location", pa.string()),
        pa.field("to_location", pa.string()),
        pa.field("qty", pa.int64(), nullable=False),
        pa.field("shipped_at", TS),
        pa.field("expected_at", TS),
        *LINEAGE_FIELDS,
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("file", pa.string()),
        pa.field("locator", pa.string()),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

EVENT_TYPES = (
    "receipt",
    "shipment",
    "sale",
    "return",
    "transfer_out",
    "transfer_in",
    "adjustment",
    "count",
    "reservation",
    "release",
)

# In the order DESIGN.md §6.4 applies them (first that applies wins), then oversell_risk (§6.6).
DISCREPANCY_CLASSES = (
    "missing_in_other",
    "missing_in_record",
    "in_transit",
    "timing",
    "within_tolerance",
    "qty_mismatch",
    "oversell_risk",
)
# Classes whose difference nothing explains: not the roll to the cut-off (timing), not goods on
# the road (in_transit), not the tolerance (within_tolerance). Finance's "unexplained value".
UNEXPLAINED = ("missing_in_other", "missing_in_record", "qty_mismatch")
# Classes whose difference the pipeline explains.
EXPLAINED = ("timing", "in_transit")
# Classes that are not worth aging: they close themselves (timing) or are accepted (tolerance).
NOT_AGED = ("timing", "within_tolerance")

# An alert's severity, in increasing order: the config's `severity:` values and the warehouse's
# ENUM severity_level.
SEVERITIES = ("info", "warning", "critical")

DATE = pa.date32()

INVENTORY_SNAPSHOT = pa.schema(
    [
        pa.field("snapshot_date", DATE, nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("location_type", pa.string()),
        pa.field("on_hand", pa.int64()),  # record system, rolled to the cut-off
        pa.field("reserved", pa.int64()),
        pa.field("atp", pa.int64()),
        pa.field("qty_by_system", pa.map_(pa.string(), pa.int64())),
        pa.field("systems_reporting", pa.list_(pa.string())),
        pa.field("status", pa.string()),  # matched | discrepant | record_only | not_in_record
        pa.field("run_id", pa.string()),
    ]
)

DISCREPANCIES = pa.schema(
    [
        pa.field("snapshot_date", DATE, nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("location_type", pa.string()),
        pa.field("record_system", pa.string(), nullable=False),
        pa.field("other_system", pa.string(), nullable=False),
        pa.field("class", pa.string(), nullable=False),
        pa.field("record_qty", pa.int64()),
        pa.field("other_qty", pa.int64()),
        pa.field("delta", pa.int64(), nullable=False),
        pa.field("raw_record_qty", pa.int64()),
        pa.field("raw_other_qty", pa.int64()),
        pa.field("raw_delta", pa.int64()),
        pa.field("tolerance", pa.float64()),
        pa.field("explained_qty", pa.int64()),
        pa.field("unit_cost", pa.float64()),
        pa.field("value_delta", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("first_seen", DATE),
        pa.field("age_days", pa.int32()),
        pa.field("record_lineage", pa.string()),
        pa.field("other_lineage", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)

DQ_RESULTS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("run_date", DATE),
        pa.field("source", pa.string(), nullable=False),
        pa.field("suite", pa.string()),
        pa.field("expectation", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("success", pa.bool_()),
        pa.field("element_count", pa.int64()),
        pa.field("unexpected_count", pa.int64()),
        pa.field("severity", pa.string()),
        pa.field("details", pa.string()),
    ]
)

ALERTS = pa.schema(
    [
        pa.field("snapshot_date", DATE, nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("observed", pa.float64()),
        pa.field("severity", pa.string()),
        pa.field("message", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)

# The stream's windowed position changes: one row per (window, sku, location) pane. Panes
# accumulate: the latest pane (highest pane_index) of a window is its current figure; LATE panes
# revise it.
POSITION_CHANGES = pa.schema(
    [
        pa.field("window_start", TS, nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("on_hand_change", pa.int64(), nullable=False),
        pa.field("reserved_change", pa.int64(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("on_hand_after", pa.int64()),  # running position after the window's latest event
        pa.field("reserved_after", pa.int64()),
        pa.field("seeded", pa.bool_()),  # the position started from a published snapshot
        pa.field("pane_timing", pa.string(), nullable=False),  # EARLY | ON_TIME | LATE | UNKNOWN
        pa.field("pane_index", pa.int64(), nullable=False),
        pa.field("run_id", pa.string()),
    ]
)

# The commit log (`<output>/_commits/`, `pipelines.commit_log`): one row per file a commit names; `file` null means "(table, partition, owner) has no file now".
COMMITS = pa.schema(
    [
        pa.field("seq", pa.int64()),
        pa.field("committed_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
        pa.field("attempt", pa.string()),
        pa.field("table", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("owner", pa.date32()),
        pa.field("file", pa.string()),  # relative to the output folder
    ]
)

RUNS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("run_date", DATE, nullable=False),
        pa.field("config_sha256", pa.string()),
        pa.field(
            "inputs",
            pa.list_(
                pa.struct(
                    [
                        ("source", pa.string()),
                        ("uri", pa.string()),
                        ("size", pa.int64()),
                        ("sha256", pa.string()),
                    ]
                )
            ),
        ),
        pa.field(
            "counts",
            pa.list_(
                pa.struct(
                    [
                        ("source", pa.string()),
                        ("read", pa.int64()),
                        ("written", pa.int64()),
                        ("quarantined", pa.int64()),
                        ("conserved", pa.bool_()),
                    ]
                )
            ),
        ),
        pa.field("status", pa.string()),
        pa.field("started", TS),
        pa.field("finished", TS),
        pa.field("runner", pa.string()),
        pa.field("message", pa.string()),
    ]
)

# Per-source data-quality metrics of every run (rows read, written, quarantined, per reason code),
# the history that `pipelines.quality_gate` compares each run with.
DQ_METRICS = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("run_date", pa.date32()),
        pa.field("source", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


# The dimensions a run publishes from its config (`pipelines.dimensions`), one file per run date,
# so analysts join descriptions, categories, ABC classes and location types to the facts
# without the config's files: every SKU of the items master or the SKU crosswalk, and every
# location of the location crosswalk, with the source ids that map to it.
ITEMS = pa.schema(
    [
        pa.field("sku", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("category", pa.string()),
        pa.field("abc_class", pa.string()),
        pa.field("unit_cost", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("safety_stock", pa.int64()),
        pa.field("in_master", pa.bool_()),
        pa.field("ids", pa.list_(pa.struct([("id_type", pa.string()), ("id_value", pa.string()), ("units_per_id", pa.int64())]))),
    ]
)

LOCATIONS = pa.schema(
    [
        pa.field("location", pa.string(), nullable=False),
        pa.field("location_type", pa.string()),
        pa.field("codes", pa.list_(pa.struct([("system", pa.string()), ("source_location", pa.string())]))),
    ]
)
