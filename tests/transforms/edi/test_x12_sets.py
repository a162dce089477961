"""The X12 set registry: each supported set has its mapper; any other set is one `unsupported_set` problem."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12_in_transit import map_180, map_856
from invrecon.transforms.edi.x12_positions import map_positions
from invrecon.transforms.edi.x12_sets import MAPPERS, map_transaction, stream_transaction
from invrecon.transforms.edi.x12_warehouse import map_940, map_944, map_945, map_947
from tests.transforms.edi.helpers import BODY_846, SAMPLES, parse, render, transactions, tx


def test_the_registry_maps_every_supported_set():
    assert MAPPERS == {"846": map_positions, "852": map_positions, "856": map_856, "180": map_180,
                       "940": map_940, "944": map_944, "945": map_945, "947": map_947}


def test_stream_transaction_yields_records_and_fills_problems():
    (t,) = transactions(render([tx("846", 1, BODY_846)]))
    problems: list = []
    assert len(list(stream_transaction(t, MapContext(file="f.edi"), problems))) == 3 and problems == []


def test_an_unsupported_set_is_one_problem_and_no_record():
    (t,) = transactions(render([tx("850", 1, [["BEG", "00", "SA", "PO1", "", "20260301"]])]))
    problems: list = []
    assert list(stream_transaction(t, MapContext(file="f.edi"), problems)) == []
    assert [(p.code, p.segment, p.tag) for p in problems] == [("unsupported_set", 3, "ST")]


def test_map_transaction_collects_records_and_problems():
    (t,) = transactions(render([tx("846", 1, [*BODY_846[:3], ["QTY", "17", "x", "EA"]])]))
    records, problems = map_transaction(t, MapContext(file="f.edi"))
    assert records == [] and [p.code for p in problems] == ["bad_quantity"]


X12_SAMPLES = sorted(p for p in SAMPLES.rglob("*.edi") if p.read_bytes().lstrip(b"\xef\xbb\xbf \r\n").startswith(b"ISA")) if SAMPLES.is_dir() else []


@pytest.mark.skipif(not X12_SAMPLES, reason="../shared/edi-samples is not present")
@pytest.mark.parametrize("path", X12_SAMPLES, ids=lambda p: p.name)
def test_the_mappers_alone_give_the_records_of_parse_edi_on_real_samples(path):
    """Read where present, never copied: the registry's mappers over the checked transactions of a
    partner file are exactly the records `parse_edi` hands out."""
    data = path.read_bytes()
    ctx = MapContext(file=path.name)
    direct = [r for t in transactions(data) for r in stream_transaction(t, ctx, [])]
    assert direct == [r for r in parse(data, file=path.name) if r["kind"] != "error"]
