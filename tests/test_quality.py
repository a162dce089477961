"""Data-quality gates (issue 4): every expectation on crafted bad input, the gate, the history."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest

from invrecon.pipelines.quality_gate import _anomalies
from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.quality import EXPECTATIONS_DIR, ROW_LEVEL_PREFIXES, SuiteError, Validator, load_suite, suite_parameters
from tests.conftest import RUN_DATE, make_world, run_batch, warehouse

UTC = dt.UTC
CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=UTC)
AS_OF = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
N = 6


def _good(record: str) -> pl.DataFrame:
    if record == "positions":
        rows = [{"system": "erp", "sku": f"SKU{i}", "location": f"S000{i}", "as_of": AS_OF, "on_hand": 10 + i, "reserved": 1,
                 "available": 5, "uom_source": "EA", "units_per_uom": 1, "unit_cost": 2.0, "source": "s", "file": "f.csv", "locator": f"line {i + 2}"} for i in range(N)]
        schema = POSITION
    elif record == "movements":
        rows = [{"event_id": f"E{i}", "system": "store", "event_type": "sale", "sku": f"SKU{i}", "location": "S0001", "qty": -1, "reserved_delta": 0,
                 "occurred_at": AS_OF, "reference": None, "counterparty_location": None, "source": "s", "file": "e.jsonl", "locator": f"line {i + 1}"} for i in range(N)]
        schema = MOVEMENT
    else:
        rows = [{"shipment_id": f"ASN{i}", "sku": f"SKU{i}", "from_location": "DC01", "to_location": "S0001", "qty": 4, "shipped_at": AS_OF,
                 "expected_at": None, "source": "s", "file": "a.edi", "locator": f"segment {i}"} for i in range(N)]
        schema = IN_TRANSIT
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=schema))


def _mutate(df: pl.DataFrame, exp: dict, params: dict) -> tuple[pl.DataFrame, set[int]]:
    """Break row 3 (and for uniqueness row 4 too) against one expectation."""
    kw, col, t = exp["kwargs"], exp["kwargs"].get("column"), exp["type"]
    rows = df.to_dicts()
    if t == "expect_column_values_to_not_be_null":
        rows[3][col] = None
    elif t == "expect_column_values_to_be_between":
        lo = kw.get("min_value")
        if isinstance(lo, dict):  # a timestamp window parameter
            rows[3][col] = dt.datetime.fromisoformat(params[lo["$PARAMETER"]]) - dt.timedelta(days=3)
        else:
            rows[3][col] = (lo - 1) if lo is not None else kw["max_value"] + 1
    elif t == "expect_column_values_to_be_in_set":
        rows[3][col] = "teleport"
    elif t == "expect_column_values_to_be_unique":
        rows[4][col] = rows[3][col]
        return pl.DataFrame(rows, schema=df.schema), {3, 4}
    elif t == "expect_column_values_to_match_regex":
        rows[3][col] = "has a space"
    else:  # pragma: no cover - a new row-level type needs a mutation here
        raise AssertionError(f"no mutation for {t}")
    return pl.DataFrame(rows, schema=df.schema), {3}


def _row_level_cases():
    for record, name in (("positions", "position.json"), ("movements", "movement.json"), ("in_transit_lines", "in_transit.json")):
        suite = load_suite(EXPECTATIONS_DIR / name)
        for i, exp in enumerate(suite["expectations"]):
            if exp["type"].startswith(ROW_LEVEL_PREFIXES):
                yield pytest.param(record, suite, i, id=f"{suite['name']}-{i}-{exp['type']}-{exp['kwargs'].get('column')}")


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    return Validator(str(tmp_path_factory.mktemp("gx")), run_name="test")


PARAMS = suite_parameters(cutoff=CUTOFF, previous_rows=None, band=0.5, max_lag_hours=36)


@pytest.mark.parametrize("record, suite, index", _row_level_cases())
def test_each_row_level_expectation_quarantines_exactly_the_bad_rows(validator, record, suite, index):
    exp = suite["expectations"][index]
    good = _good(record)
    clean = validator.validate(good, source="s", record=record, suites=[suite], params=PARAMS, run_id="r", run_date=dt.date(2026, 11, 30))
    assert clean.keep.all() and clean.quarantine.height == 0 and not clean.gate_failed
    bad, broken = _mutate(good, exp, PARAMS)
    out = validator.validate(bad, source="s", record=record, suites=[suite], params=PARAMS, run_id="r", run_date=dt.date(2026, 11, 30))
    assert {i for i, k in enumerate(out.keep) if not k} == broken
    assert out.quarantine["locator"].to_list() == [bad["locator"][i] for i in sorted(broken)]
    assert all(exp["type"] in r for r in out.quarantine["reason"])
    assert set(out.quarantine["reason_code"]) == {"dq_expectation_failed"}
    failed = [r for r in out.results if not r["success"]]
    assert [r["expectation"].split("(")[0] for r in failed] == [exp["type"]]
    assert failed[0]["unexpected_count"] == len(broken) and failed[0]["severity"] == exp["meta"]["severity"]
    assert not out.gate_failed  # row-level failures quarantine rows; they do not gate


def test_table_level_row_count_band_gates_when_critical(validator):
    suite = load_suite(EXPECTATIONS_DIR / "position.json")
    params = suite_parameters(cutoff=CUTOFF, previous_rows=100, band=0.5, max_lag_hours=36)
    out = validator.validate(_good("positions"), source="s", record="positions", suites=[suite], params=params, run_id="r", run_date=dt.date(2026, 11, 30))
    assert out.gate_failed and out.keep.all()
    assert [r["expectation"] for r in out.results if not r["success"]] == ["expect_table_row_count_to_be_between"]
    assert suite_parameters(cutoff=CUTOFF, previous_rows=100, band=0.5, max_lag_hours=36)["min_rows"] == 50


def test_warning_table_level_failure_does_not_gate(validator):
    suite = load_suite(EXPECTATIONS_DIR / "movement.json")  # its row count check is a warning
    params = suite_parameters(cutoff=CUTOFF, previous_rows=1000, band=0.5, max_lag_hours=36)
    out = validator.validate(_good("movements"), source="s", record="movements", suites=[suite], params=params, run_id="r", run_date=dt.date(2026, 11, 30))
    assert not out.gate_failed
    assert [(r["expectation"], r["severity"]) for r in out.results if not r["success"]] == [("expect_table_row_count_to_be_between", "warning")]


def test_suite_without_severity_is_refused_naming_file_and_expectation(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"}, "meta": {}}]}))
    with pytest.raises(SuiteError, match=r"s\.json: expectations\[0\] \(expect_column_values_to_not_be_null\): meta.severity"):
        load_suite(bad)


def test_stale_extract_fails_the_gate_with_exit_3_and_writes_quarantine_and_dq_results(world_copy, tmp_path, capsys):
    erp = world_copy / "inputs" / "erp" / RUN_DATE / "erp_stock.csv"
    erp.write_text(erp.read_text().replace("2026-12-01T00:30:00", "2026-11-25T00:30:00"))
    out = tmp_path / "out"
    assert run_batch(world_copy / "config.yaml", output=out) == 3
    assert "erp_nightly (positions): expect_column_max_to_be_between(as_of)" in capsys.readouterr().err
    con = warehouse(out)
    assert con.execute("SELECT status FROM runs").fetchall() == [("dq_failed",)]
    stale = con.execute("SELECT count(*) FROM quarantine WHERE source = 'erp_nightly' AND reason LIKE '%expect_column_values_to_be_between(as_of)%'").fetchall()[0][0]
    assert stale == 186  # every row that parsed, each with the expectation as its reason
    failed = con.execute("SELECT expectation FROM dq_results WHERE NOT success AND severity = 'critical'").fetchall()
    assert ("expect_column_max_to_be_between(as_of)",) in failed
    # finance never sees figures the gate refused
    assert con.execute("SELECT count(*) FROM discrepancies").fetchall() == [(0,)]
    assert not (out / "discrepancies").exists()


def test_row_count_drop_against_previous_run_gates(tmp_path):
    world = make_world(tmp_path / "w", skus=30, locations=5, days=2, seed=5)
    out = tmp_path / "out"
    assert run_batch(world / "config.yaml", "2026-11-29", output=out) == 0
    erp = world / "inputs" / "erp" / "2026-11-30" / "erp_stock.csv"
    lines = erp.read_text().splitlines()
    erp.write_text("\n".join(lines[: len(lines) // 4]) + "\n")  # a truncated extract
    assert run_batch(world / "config.yaml", "2026-11-30", output=out) == 3
    con = warehouse(out)
    row = con.execute("SELECT success, element_count, details FROM dq_results WHERE run_date = DATE '2026-11-30' AND source = 'erp_nightly' AND expectation = 'expect_table_row_count_to_be_between'").fetchall()[0]
    assert row[0] is False and row[1] < len(lines) // 4
    # The first day is still whole in the warehouse.
    assert con.execute("SELECT count(*) FROM discrepancies WHERE snapshot_date = DATE '2026-11-29'").fetchall()[0][0] > 0


def test_source_suite_quarantines_negative_store_counts(world_copy, tmp_path):
    import pyarrow.parquet as pq

    f = world_copy / "inputs" / "store" / RUN_DATE / "store_0002.parquet"
    t = pq.read_table(f)
    qty = t.column("on_hand_qty").to_pylist()
    qty[0] = -4
    pq.write_table(t.set_column(t.schema.get_field_index("on_hand_qty"), "on_hand_qty", pa.array(qty, pa.int32())), f)
    out = tmp_path / "out"
    assert run_batch(world_copy / "config.yaml", output=out) == 0
    con = warehouse(out)
    rows = con.execute("SELECT locator, reason FROM quarantine WHERE reason_code = 'dq_expectation_failed'").fetchall()
    assert rows == [("row 1", "failed expectation expect_column_values_to_be_between(on_hand) [warning]")]
    counts = {c["source"]: c for c in con.execute("SELECT counts FROM runs").fetchall()[0][0]}
    assert counts["store_counts"]["read"] == counts["store_counts"]["written"] + counts["store_counts"]["quarantined"]


def test_conservation_and_quarantine_on_a_world_with_5_percent_faults(tmp_path):
    world = make_world(tmp_path / "w", skus=120, locations=10, seed=9, fault_rate=0.05)
    out = tmp_path / "out"
    assert run_batch(world / "config.yaml", output=out) == 0
    con = warehouse(out)
    status, counts = con.execute("SELECT status, counts FROM runs").fetchall()[0]
    assert status == "succeeded"
    for c in counts:
        assert c["read"] == c["written"] + c["quarantined"], c
    want = sorted(tuple(r) for r in pl.read_csv(world / "ground_truth" / "quarantine.csv").select("source", "file", "locator", "reason_code").rows())
    root = str(world) + "/"
    got = sorted((s, f.replace(root, ""), loc, code) for s, f, loc, code in con.execute("SELECT source, file, locator, reason_code FROM quarantine").fetchall())
    assert got == want
    assert len(want) > 0.04 * sum(c["read"] for c in counts)


def _history(values: list[float]) -> pl.DataFrame:
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(len(values))]
    return pl.DataFrame({"run_date": days, "source": ["erp"] * len(values), "metric": ["rows_read"] * len(values), "value": values})


class _Job:
    run_id, run_date = "r", dt.date(2026, 11, 30)


@pytest.mark.parametrize(
    "history, value, verdict",
    [
        ([100, 102, 98, 101, 99], 101, True),
        ([100, 102, 98, 101, 99], 150, False),  # far beyond 3 sigma of a tight history
        ([100, 100, 100], 100, True),
        ([100, 100, 100], 101, False),  # a flat history flags any change
        ([100, 102], 500, None),  # fewer runs than history_min_runs: no verdict yet
    ],
)
def test_metric_history_flags_values_beyond_k_sigma(history, value, verdict):
    rows = _anomalies([{"source": "erp", "metric": "rows_read", "value": value}], _history(history), k=3, min_runs=3, job=_Job)
    if verdict is None:
        assert rows == []
    else:
        assert [(r["success"], r["severity"], r["suite"]) for r in rows] == [(verdict, "warning", "history")]


def test_metric_missing_from_earlier_runs_counts_as_zero():
    hist = _history([5, 5, 5])
    rows = _anomalies([{"source": "erp", "metric": "quarantined:unmapped_sku", "value": 40}], hist, k=3, min_runs=3, job=_Job)
    assert rows[0]["success"] is False and json.loads(rows[0]["details"])["mean"] == 0


def test_duplicate_source_records_fail_the_critical_unique_key_check(validator):
    suite = load_suite(EXPECTATIONS_DIR / "position.json")
    good = _good("positions")
    dup = pl.concat([good, good.head(1)])
    out = validator.validate(dup, source="s", record="positions", suites=[suite], params=PARAMS, run_id="r", run_date=dt.date(2026, 11, 30))
    assert out.gate_failed
    assert [r["expectation"] for r in out.results if not r["success"]] == ["expect_compound_columns_to_be_unique(system,sku,location,as_of,file,locator)"]


def test_conservation_violation_is_detected():
    from invrecon.pipelines.settle import _conservation

    counts = [("read", "erp", 10), ("written", "erp", 6), ("quarantined:bad_quantity", "erp", 2), ("quarantined:unmapped_sku", "erp", 1)]
    assert _conservation(counts, ["erp"]) == [{"source": "erp", "read": 10, "written": 6, "quarantined": 3, "conserved": False, "unreadable": 0}]
