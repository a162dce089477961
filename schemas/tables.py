"""The one registry of the tables invrecon writes: each one's schema, partitions and meaning.

`TABLES` names every table of an output folder once. Everything else that lists tables is
derived from it, so a table added here is published, viewed, documented and (if the stream
writes it) written by the stream without a second list to keep in step:

- `PARTITION_COLUMN`: the tables the batch publishes, each with its hive partition column
  (`<col>=<date>` folders), in publish order (`pipelines.commit_log`, `pipelines.warehouse_views`);
- `GATE_TABLES`: the tables published when the quality gate fails (`pipelines.batch_finish`);
- `STREAM_TABLES`: the stream's tables, each with its schema and partition column
  (`transforms.stream.sink`, `pipelines.stock_stream`);
- each table's `doc`, what one row is: the table comment of the warehouse
  (`pipelines.warehouse_docs`, docs/warehouse.md).

    >>> PARTITION_COLUMN["discrepancies"], STREAM_TABLES["quarantine"][1], GATE_TABLES
    ('snapshot_date', 'event_date', ('quarantine', 'dq_results', 'dq_metrics', 'runs'))
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from invrecon.schemas import (
    ALERTS,
    DISCREPANCIES,
    DQ_METRICS,
    DQ_RESULTS,
    IN_TRANSIT,
    INVENTORY_SNAPSHOT,
    ITEMS,
    LOCATIONS,
    MOVEMENT,
    POSITION,
    POSITION_CHANGES,
    QUARANTINE,
    RUNS,
)

__all__ = ["GATE_TABLES", "PARTITION_COLUMN", "STREAM_TABLES", "TABLES", "Table"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    """One table of the output folder.

    Args:
      schema: the Arrow schema of its Parquet files.
      partition: the batch's partition column; None: the batch does not publish the table.
      gated: published when the quality gate fails too (what went wrong and why, never the
        figures the gate stopped).
      stream_partition: the stream's partition column; None: the stream does not write it.
      latest_by: the key the warehouse view keeps one row of, the latest run date's copy
        (None: every row of every run date).
      doc: what one row is (the warehouse's comment on the table).
    """

    schema: pa.Schema
    partition: str | None = None
    gated: bool = False
    stream_partition: str | None = None
    latest_by: str | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.gated and self.partition is None:
            raise ValueError("`gated` needs `partition`: only a published table is published when the gate fails")
        if self.latest_by is not None and self.latest_by not in self.schema.names:
            raise ValueError(f"`latest_by` {self.latest_by!r} is not a column of the table's schema")


TABLES: dict[str, Table] = {
    "inventory_snapshot": Table(schema=INVENTORY_SNAPSHOT, partition="snapshot_date", doc=(
        "One row per snapshot_date, sku, location that any positions system reports: the book's position rolled to the "
        "cut-off and every system's figure.")),
    "discrepancies": Table(schema=DISCREPANCIES, partition="snapshot_date", doc=(
        "One row per snapshot_date, sku, location, other_system, class: a system that differs from the book (the record "
        "system) at the cut-off, or a channel that publishes more than ATP (oversell_risk). Matches are not written.")),
    "in_transit": Table(schema=IN_TRANSIT, partition="snapshot_date", doc=(
        "One row per snapshot_date, shipment_id, sku: a shipment open at the cut-off (shipped, no matching receipt yet), "
        "what in_transit discrepancies are matched against.")),
    "positions": Table(schema=POSITION, partition="snapshot_date", doc=(
        "One row per position record a source delivered for the run date, canonicalized (crosswalked sku and location, "
        "eaches) and as reported: not rolled to the cut-off.")),
    "movements": Table(schema=MOVEMENT, partition="event_date", stream_partition="event_date", latest_by="event_id", doc=(
        "One row per event_id: canonical, de-duplicated stock movements (events, EDI 944/947), partitioned by event date; "
        "a later run date's copy of an event replaces an earlier one.")),
    "quarantine": Table(schema=QUARANTINE, partition="run_date", gated=True, stream_partition="event_date", doc=(
        "One row per rejected input record (or unreadable file): nothing is dropped silently; per source, read = written "
        "+ quarantined (see runs.counts).")),
    "dq_results": Table(schema=DQ_RESULTS, partition="run_date", gated=True, doc=(
        "One row per run, source and expectation: the data-quality checks of a run (Great Expectations suites, source "
        "volume and metric history).")),
    "dq_metrics": Table(schema=DQ_METRICS, partition="run_date", gated=True, doc=(
        "One row per run, source and metric: the figures the quality gate compares with the source's history (rows_read, "
        "rows_written, rows_quarantined, quarantined:<reason_code>).")),
    "alerts": Table(schema=ALERTS, partition="snapshot_date", stream_partition="snapshot_date", doc=(
        "One row per snapshot_date, rule, subject: a configured alert threshold (config `alerts:`) that was crossed.")),
    "runs": Table(schema=RUNS, partition="run_date", gated=True, doc=(
        "One row per run date: its latest run, the inputs it read and the conservation counts per source.")),
    "items": Table(schema=ITEMS, partition="run_date", latest_by="sku", doc=(
        "One row per SKU of the items master or the SKU crosswalk, as the latest run date that had it published it "
        "(`run_date`): join discrepancies, snapshots and movements on sku for description, category and ABC class.")),
    "locations": Table(schema=LOCATIONS, partition="run_date", latest_by="location", doc=(
        "One row per location of the location crosswalk, as the latest run date that had it published it: join on "
        "location for its type and source codes.")),
    "position_changes": Table(schema=POSITION_CHANGES, stream_partition="window_date", doc=(
        "One row per window, sku, location pane of the stream: the position's change in the window and the running "
        "position after it; the latest pane (highest pane_index) of a window is its current figure.")),
    "availability": Table(schema=POSITION, stream_partition="event_date", doc=(
        "One row per availability figure a channel published on the stream, as a position record (available only).")),
}

# Published table -> its partition column, in the order the batch publishes them.
PARTITION_COLUMN: dict[str, str] = {name: t.partition for name, t in TABLES.items() if t.partition is not None}
# Published when the gate fails: what went wrong and why, never the figures it stopped.
GATE_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.gated)
# The stream's tables: name -> (schema, partition column).
STREAM_TABLES: dict[str, tuple[pa.Schema, str]] = {
    name: (t.schema, t.stream_partition) for name, t in TABLES.items() if t.stream_partition is not None
}
