"""Shared helpers of the reconcile tests: a cut-off, hand-made canonical rows and the master tables.

The cut-off T is 2026-11-30 23:59:59.999 America/Chicago; EVENING is 20:00 local on the run
date, AFTER_MIDNIGHT 00:30 local the next day. Items A (class B, 2.00) and B (class A, 10.00);
locations S1 (a store) and DC1 (a DC).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

from invrecon.transforms.reconcile.classify import Tolerance

UTC = dt.UTC
DAY = dt.date(2026, 11, 30)
T = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=UTC)  # 23:59:59.999 America/Chicago
EVENING = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 20:00 local
AFTER_MIDNIGHT = dt.datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 00:30 local next day

STORE_TOL = Tolerance(match=(("location_type", "store"),), abs=1, pct=0.02)
A_TOL = Tolerance(match=(("abc_class", "A"),), abs=0, pct=0)
DEFAULT = Tolerance(match=(), abs=0, pct=0)


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows of `schema`; a column a row leaves out is null."""
    base = {f.name: None for f in schema}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=schema)


def frame(rows: list[dict], schema: pa.Schema) -> pl.DataFrame:
    """`table` as a polars frame."""
    return pl.from_arrow(table(rows, schema))


def pos(system, sku, location, qty, as_of, *, reserved=None, available=None, unit_cost=None):
    return {"system": system, "sku": sku, "location": location, "on_hand": qty, "as_of": as_of,
            "reserved": reserved, "available": available, "unit_cost": unit_cost, "source": system, "file": f"{system}.csv", "locator": "line 2"}


def mv(sku, location, event_type, qty, at, *, reserved_delta=0, event_id=None, reference=None):
    return {"event_id": event_id or f"{event_type}-{at.isoformat()}-{qty}", "system": "store", "event_type": event_type, "sku": sku,
            "location": location, "qty": qty, "reserved_delta": reserved_delta, "occurred_at": at, "reference": reference, "source": "ev"}


def shipment(shipment_id, sku, from_location, to_location, qty, shipped_at=EVENING):
    return {"shipment_id": shipment_id, "sku": sku, "from_location": from_location, "to_location": to_location, "qty": qty,
            "shipped_at": shipped_at, "source": "edi"}


def items_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"sku": ["A", "B"], "abc_class": ["B", "A"], "category": ["x", "x"], "unit_cost": [2.0, 10.0], "currency": ["USD", "USD"], "safety_stock": [0, 0]}
    )


def locations_frame() -> pl.DataFrame:
    return pl.DataFrame({"location": ["S1", "DC1"], "location_type": ["store", "dc"]})
