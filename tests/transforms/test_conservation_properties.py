"""Property tests over the canonicalizers: for any input, kept + rejected = read (issue 12).

Hypothesis builds rows, events and EDI records out of hostile values (numbers too big for any
type, not numbers at all, fractions of pack units, dates in year 9999 or 10000, unknown ids,
units and event types, nulls everywhere) and every reader must account for each record exactly
once: as a canonical record or as a quarantine row, never as an exception or a silent loss.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import hypothesis
import hypothesis.strategies as st
import polars as pl
import pytest

from invrecon.transforms.canonical import MAX_EACHES, TIMESTAMP_MAX, TIMESTAMP_MIN, load_crosswalks
from invrecon.transforms.readers.edi import canonical_from_edi
from invrecon.transforms.readers.events import canonical_events_frame, read_events
from invrecon.transforms.readers.tabular import read_tabular
from tests.conftest import WORLD
from tests.transforms.hostile import COMMERCE, EDI, ERP, EVENTS, collect, erp_lines

SETTINGS = hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC)

NUMBERS = st.one_of(
    st.sampled_from(["1", "0", "-3", "12.5", "12.3", "0.25", "1e308", "-1e308", "1e400", "inf", "-inf", "NaN", "",
                     " ", "12x", "1_000", "0x10", "4611686018427387904", "999999999999", "1E12", "1e-30", "+7", "7.", ".5"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
WHEN = st.one_of(
    st.sampled_from(["2026-11-30T12:00:00-06:00", "2026-12-01T00:30:00", "9999-12-31T23:59:59Z", "10000-01-01", "0001-01-01T00:00:00Z",
                     "1899-12-31T23:59:59Z", "2199-12-31T23:59:59Z", "2026-02-30", "not a date", "", "2026-12-03T07:00:00Z"]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(lambda d: d.isoformat()),
    st.text(max_size=8),
)
UOMS = st.sampled_from(["EA", "DZ", "CS", "CA", "PK", "", "??", "ea", " GR ", "PR"])


@pytest.fixture(scope="module")
def crosswalks():
    return load_crosswalks(str(WORLD / "crosswalk/sku.csv"), str(WORLD / "crosswalk/location.csv"))


def _sane(results) -> None:
    """Every kept record is whole eaches in range, dated in the supported range."""
    for r in results:
        for table, qty, when in ((r.positions, "on_hand", "as_of"), (r.movements, "qty", "occurred_at"), (r.in_transit, "qty", "shipped_at")):
            if table is None or not table.num_rows:
                continue
            df = pl.from_arrow(table)
            for col in {qty, "available"} & set(df.columns):
                assert (df[col].drop_nulls().abs().max() or 0) <= MAX_EACHES
            assert df[when].min() >= TIMESTAMP_MIN and df[when].max() < TIMESTAMP_MAX


@SETTINGS
@hypothesis.given(
    rows=st.lists(
        st.fixed_dictionaries({
            "MATNR": st.sampled_from(["10000000", "10000001", "99999999", "", " 10000002 "]),
            "WERKS": st.sampled_from(["W101", "2001", "W999", ""]),
            "LABST": NUMBERS, "RESERVED": NUMBERS, "MEINS": UOMS, "VERPR": NUMBERS, "SNAPSHOT_TS": WHEN,
        }),
        max_size=25,
    ),
    repeat=st.integers(min_value=0, max_value=3),
)
def test_any_erp_extract_conserves_its_rows(tmp_path_factory, crosswalks, rows, repeat):
    rows = rows + rows[:repeat]  # some exact repeats
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=erp_lines()[0].split(","), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: v.replace("\r", "").replace("\n", "") for k, v in r.items()} for r in rows)
    path = tmp_path_factory.mktemp("erp") / "erp.csv"
    path.write_text(buf.getvalue())
    results = list(read_tabular(str(path), ERP, crosswalks))
    kept, q, read = collect(results)  # asserts kept + quarantined == read
    assert read == len(rows)
    _sane(results)


@SETTINGS
@hypothesis.given(
    objs=st.lists(
        st.dictionaries(
            st.sampled_from(["gtin", "node", "available_to_sell", "published_at", "other"]),
            st.one_of(NUMBERS, WHEN, st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)),
        ),
        max_size=15,
    ),
    junk=st.lists(st.sampled_from(["[1, 2]", "{", "null", '"x"', "[" * 3000 + "]" * 3000]), max_size=3),
)
def test_any_jsonl_feed_conserves_its_lines(tmp_path_factory, crosswalks, objs, junk):
    lines = [json.dumps(o, allow_nan=True) for o in objs] + junk
    path = tmp_path_factory.mktemp("jsonl") / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    results = list(read_tabular(str(path), COMMERCE, crosswalks))
    kept, q, read = collect(results)
    assert read == len(lines) or (read == 1 and q["locator"].to_list() == ["file"])
    _sane(results)


EVENT = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["e1", "e2", "", None]),
        "event_type": st.sampled_from(["sale", "receipt", "adjustment", "count", "reservation", "release", "teleport", "", None]),
        "occurred_at": WHEN,
        "system": st.sampled_from(["store", "wms", "erp", None, "mars"]),
        "location": st.sampled_from(["0001", "WH-01", "W101", "nowhere", "", None]),
        "item": st.one_of(st.none(), st.fixed_dictionaries({"id_type": st.sampled_from(["gtin", "store_item", "sku", "bogus", ""]),
                                                          "id": st.sampled_from(["070000000003", "500001", "SKU000001", "1", ""])})),
        "qty": st.one_of(NUMBERS, st.integers(), st.floats(allow_nan=False), st.none()),
        "uom": st.one_of(UOMS, st.none()),
    }
)


@SETTINGS
@hypothesis.given(events=st.lists(EVENT, max_size=20), cutoff=st.sampled_from([None, CUTOFF]))
def test_any_events_file_conserves_its_lines(tmp_path_factory, crosswalks, events, cutoff):
    path = tmp_path_factory.mktemp("ev") / "e.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    spec = EVENTS if cutoff is None else EVENTS.__class__(**{**EVENTS.__dict__, "cutoff": cutoff})
    results = list(read_events(str(path), spec, crosswalks))
    kept, q, read = collect(results)
    assert read == len(events)
    _sane(results)


@SETTINGS
@hypothesis.given(
    frame=st.lists(
        st.fixed_dictionaries({
            "event_id": st.text(max_size=3), "event_type": st.sampled_from(["sale", "adjustment", "count", "x"]), "occurred_at": WHEN,
            "system": st.sampled_from(["store", "wms", None]), "location": st.sampled_from(["0001", "WH-01", "zz", None]),
            "id_type": st.sampled_from(["gtin", "store_item", "sku"]), "item_id": st.sampled_from(["070000000003", "500001", "nope", ""]),
            "qty": st.one_of(NUMBERS, st.none()), "uom": UOMS, "reference": st.none(), "counterparty_location": st.sampled_from([None, "0002", "??"]),
            "_locator": st.just("line 1"), "_raw": st.just("{}"),
        }),
        max_size=30,
    )
)
def test_the_event_canonicalizer_conserves_any_frame(crosswalks, frame):
    df = pl.DataFrame(frame, schema={k: pl.String for k in (frame[0] if frame else {"event_id": 0})}) if frame else None
    hypothesis.assume(df is not None)
    result = canonical_events_frame(df, uri="x.jsonl", spec=EVENTS, crosswalks=crosswalks)
    collect([result])
    assert result.read == len(frame)
    _sane([result])


EDI_RECORD = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["position", "in_transit", "movement", "error"]),
        "segment": st.integers(min_value=1, max_value=99),
        "control": st.just({"interchange": "1", "group": "1", "transaction": "0001"}),
        "item_id": st.sampled_from(["070000000003", "10070000000000", "nope", None]),
        "item_id_qualifier": st.sampled_from(["UP", "UK", "VN", None]),
        "qty": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True), st.none(), NUMBERS),
        "uom": st.one_of(UOMS, st.none()),
        "qty_type": st.sampled_from(["on_hand", "available", None]),
        "location": st.sampled_from(["WH-01", "ST0001", "zz", None]),
        "from_location": st.sampled_from(["WH-01", None]), "to_location": st.sampled_from(["ST0001", "??", None]),
        "shipment_id": st.sampled_from(["ASN1", None]),
        "event_type": st.sampled_from(["receipt", "shipment", "adjustment", "sale", "bogus", None]),
        "as_of": st.one_of(WHEN, st.none()), "occurred_at": st.one_of(WHEN, st.none()), "shipped_at": st.one_of(WHEN, st.none()),
        "expected_at": st.one_of(WHEN, st.none()),
        "code": st.just("bad_quantity"), "message": st.just("m"),
    }
)


@SETTINGS
@hypothesis.given(records=st.lists(EDI_RECORD, max_size=30), cutoff=st.sampled_from([None, CUTOFF]))
def test_the_edi_canonicalizer_conserves_any_records(crosswalks, records, cutoff):
    spec = EDI if cutoff is None else EDI.__class__(**{**EDI.__dict__, "cutoff": cutoff})
    result = canonical_from_edi(records, "x.edi", spec, crosswalks)
    kept, q, read = collect([result])
    assert read == len(records)
    _sane([result])
