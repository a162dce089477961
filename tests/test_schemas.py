"""The constants `schemas/` is the one home of, as the transforms read them."""

from __future__ import annotations

import doctest

import pyarrow as pa
import pytest

from invrecon import schemas
from invrecon.transforms.readers import events


def test_every_event_type_has_one_sign_and_only_those_are_known():
    """`schemas.EVENT_TYPES` is the list the readers check (`unknown_event_type`); each type moves
    on_hand (`EVENT_SIGN`) or reserved (`RESERVED_SIGN`), never both, never neither."""
    assert len(set(schemas.EVENT_TYPES)) == len(schemas.EVENT_TYPES)
    assert set(schemas.EVENT_TYPES) == set(events.EVENT_SIGN) | set(events.RESERVED_SIGN)
    assert not set(events.EVENT_SIGN) & set(events.RESERVED_SIGN)
    assert events.EVENT_TYPES is schemas.EVENT_TYPES


def test_the_streams_output_schema_lives_in_schemas():
    from invrecon.transforms.stream import POSITION_CHANGES, STREAM_TABLES

    assert POSITION_CHANGES is schemas.POSITION_CHANGES
    assert STREAM_TABLES["position_changes"] == (schemas.POSITION_CHANGES, "window_date")


# ----------------------------------------------------------------------------- the table registry


def test_every_registered_table_has_a_schema_and_every_published_one_a_partition_column():
    from invrecon.schemas.tables import GATE_TABLES, PARTITION_COLUMN, STREAM_TABLES, TABLES

    assert TABLES and all(isinstance(t.schema, pa.Schema) and t.schema.names for t in TABLES.values())
    assert all(t.doc for t in TABLES.values()), [name for name, t in TABLES.items() if not t.doc]
    for name, column in PARTITION_COLUMN.items():
        assert column in ("snapshot_date", "run_date", "event_date"), (name, column)
    assert set(GATE_TABLES) <= set(PARTITION_COLUMN)
    assert set(PARTITION_COLUMN) | set(STREAM_TABLES) == set(TABLES)
    assert all(partition for _, partition in STREAM_TABLES.values())


def test_a_gated_table_must_be_published_and_latest_by_must_be_a_column():
    from invrecon.schemas.tables import Table

    with pytest.raises(ValueError, match="`gated` needs `partition`"):
        Table(schema=schemas.RUNS, gated=True)
    with pytest.raises(ValueError, match="`latest_by` 'nope'"):
        Table(schema=schemas.RUNS, partition="run_date", latest_by="nope")


def test_every_list_of_tables_is_the_registrys():
    """Publishing, the warehouse's views and comments, the gate and the stream read the registry."""
    from invrecon.pipelines import batch_finish, publish, warehouse_docs, warehouse_views
    from invrecon.schemas import tables
    from invrecon.transforms.stream import sink

    assert publish.PARTITION_COLUMN is tables.PARTITION_COLUMN
    assert batch_finish.GATE_TABLES is tables.GATE_TABLES
    assert sink.STREAM_TABLES is tables.STREAM_TABLES
    assert warehouse_views.SCHEMAS == {name: tables.TABLES[name].schema for name in tables.PARTITION_COLUMN}
    published = {name: rel for name, rel in warehouse_docs.RELATIONS.items() if rel.kind == "published"}
    assert list(published) == list(tables.PARTITION_COLUMN)
    assert all(rel.doc == tables.TABLES[name].doc for name, rel in published.items())


def test_the_registrys_doc_examples():
    from invrecon.schemas import tables

    assert doctest.testmod(tables).failed == 0
