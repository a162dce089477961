"""`ReadSources` in a TestPipeline: every kind of source on a tiny world, each record on its tagged output."""

from __future__ import annotations

import json

import pyarrow as pa
from apache_beam import CombinePerKey, FlatMap, Map
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.transforms.ingest import ReadSources
from invrecon.transforms.readers.common import SourceSpec
from tests.transforms.edi.helpers import render, tx
from tests.transforms.readers.tiny import write_crosswalks

TS = "2026-11-30T20:00:00"


def _event(event_id: str, event_type: str, qty) -> str:
    return json.dumps({"event_id": event_id, "event_type": event_type, "occurred_at": TS, "system": "wms", "location": "E1",
                       "item": {"id_type": "sku", "id": "SKU-2"}, "qty": qty})


def _world(tmp_path) -> tuple[tuple[tuple[SourceSpec, tuple[str, ...]], ...], str, str]:
    """Two ERP files, a feed, an events file and a 947: the (spec, files) of each source and the crosswalks."""
    sku, location = write_crosswalks(tmp_path)
    (tmp_path / "erp1.csv").write_text(f"MATNR,WERKS,LABST,TS\nM1,P1,10,{TS}\nM2,P2,x,{TS}\n")
    (tmp_path / "erp2.csv").write_text(f"MATNR,WERKS,LABST,TS\nM2,P1,4,{TS}\n")
    (tmp_path / "feed.jsonl").write_text(json.dumps({"gtin": "036000291452", "node": "P1", "ats": 6, "at": TS}) + "\n")
    (tmp_path / "events.jsonl").write_text("\n".join([_event("e1", "sale", 2), _event("e2", "receipt", 5), _event("e3", "teleport", 1), "{"]) + "\n")
    (tmp_path / "adj.edi").write_bytes(render([tx("947", 1, [["W15", "20261130", "ADJ-9"], ["N1", "WH", "East", "91", "E1"],
                                                             ["W19", "AA", "3", "EA", "", "VN", "V-100"]])], gs_code="AW"))
    erp = SourceSpec(name="erp", kind="positions", system="erp", format="csv", sku_id_type="erp_material",
                     columns=(("MATNR", "sku"), ("WERKS", "location"), ("LABST", "on_hand"), ("TS", "as_of")))
    feed = SourceSpec(name="feed", kind="availability", system="erp", format="jsonl", sku_id_type="gtin",
                      columns=(("gtin", "sku"), ("node", "location"), ("ats", "available"), ("at", "as_of")))
    events = SourceSpec(name="events", kind="events", system=None)
    edi = SourceSpec(name="tpl", kind="edi", system="wms")
    files = {erp: ("erp1.csv", "erp2.csv"), feed: ("feed.jsonl",), events: ("events.jsonl",), edi: ("adj.edi",)}
    sources = tuple((spec, tuple(str(tmp_path / f) for f in names)) for spec, names in files.items())
    return sources, sku, location


def _rows(*columns: str):
    """A step's function: the rows of a table as tuples of `columns`."""
    def rows(table: pa.Table) -> list[tuple]:
        return list(zip(*(table.column(c).to_pylist() for c in columns)))
    return rows


def test_read_sources_tags_every_record_by_its_type_and_counts_each_sources_records(tmp_path):
    sources, sku, location = _world(tmp_path)
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | "ReadSources" >> ReadSources(sources=sources, sku_crosswalk=sku, location_crosswalk=location)
        assert_that(out.positions | "PositionRows" >> FlatMap(_rows("source", "sku", "location", "on_hand")),
                    equal_to([("erp", "SKU1", "DC01", 10), ("erp", "SKU2", "DC01", 4)]), label="CheckPositions")
        assert_that(out.availability | "AvailabilityRows" >> FlatMap(_rows("source", "sku", "location", "available")),
                    equal_to([("feed", "SKU1", "DC01", 6)]), label="CheckAvailability")
        assert_that(out.movements | "MovementRows" >> FlatMap(_rows("source", "event_type", "sku", "qty")),
                    equal_to([("events", "sale", "SKU2", -2), ("events", "receipt", "SKU2", 5), ("tpl", "adjustment", "SKU1", 3)]),
                    label="CheckMovements")
        assert_that(out.in_transit | "InTransitRows" >> FlatMap(_rows("source")), equal_to([]), label="CheckInTransit")
        assert_that(out.quarantine | "QuarantineRows" >> FlatMap(_rows("source", "locator", "reason_code")),
                    equal_to([("erp", "line 3", "bad_quantity"), ("events", "line 3", "unknown_event_type"), ("events", "line 4", "malformed_event")]),
                    label="CheckQuarantine")
        assert_that(out.counts | "SumCounts" >> CombinePerKey(sum),
                    equal_to([("erp", 3), ("feed", 1), ("events", 4), ("tpl", 1)]), label="CheckCounts")
        assert_that(out.acks | "AckNames" >> Map(lambda ack: (ack[0], ack[1].startswith("ISA*"))),
                    equal_to([("adj.edi.1.997", True)]), label="CheckAcks")
