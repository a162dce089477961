"""ValidateRecords and CombineDqResults on the in-process runner with the shipped movement suite (real GX)."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from invrecon.schemas import MOVEMENT
from invrecon.transforms import validate
from invrecon.transforms.quality import EXPECTATIONS_DIR, RECORD_SUITES, load_suite
from invrecon.transforms.validate import CombineDqResults, ValidateRecords

AT = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)
RUN_DATE = dt.date(2026, 11, 30)
# The previous run's band: 5..100 rows. Each batch below has 3 rows, the source 6.
PARAMS = {"events": {"min_rows": 5, "max_rows": 100}}
IN_SET = "expect_column_values_to_be_in_set(event_type)"
BETWEEN = "expect_column_values_to_be_between(qty)"
ROW_COUNT = "expect_table_row_count_to_be_between"


def _event(n: int, *, event_type: str = "sale", qty: int = -1) -> dict:
    base = {f.name: None for f in MOVEMENT}
    return {**base, "event_id": f"E{n}", "system": "store", "event_type": event_type, "sku": "A", "location": "S1", "qty": qty,
            "reserved_delta": 0, "occurred_at": AT, "source": "events", "file": "events.jsonl", "locator": f"line {n}"}


def _batches() -> list[pa.Table]:
    first = [_event(1), _event(2, event_type="teleport"), _event(3)]
    second = [_event(4), _event(5, qty=2_000_000), _event(6)]
    return [pa.Table.from_pylist(rows, schema=MOVEMENT) for rows in (first, second)]


def _check(monkeypatch):
    # Three rows per Great Expectations call: the two batches are validated apart and their
    # partial results must be combined into one row per expectation.
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    suite = load_suite(EXPECTATIONS_DIR / RECORD_SUITES["movements"])
    return ValidateRecords(record="movements", schema=MOVEMENT, suites={"events": [suite]}, params=PARAMS, run_id="r1", run_date=RUN_DATE)


def test_failing_rows_are_quarantined_with_the_expectation_as_reason(monkeypatch):
    with BeamTestPipeline(runner="FnApiRunner") as p:
        checked = p | beam.Create(_batches()) | "ValidateMovements" >> _check(monkeypatch)
        valid = checked.valid | "ValidIds" >> beam.FlatMap(lambda t: t.column("event_id").to_pylist())
        quarantined = checked.quarantine | "QuarantineRows" >> beam.FlatMap(
            lambda t: [(r["run_id"], r["source"], r["locator"], r["reason_code"], r["reason"], json.loads(r["raw"])["event_id"]) for r in t.to_pylist()])
        assert_that(valid, equal_to(["E1", "E3", "E4", "E6"]), label="CheckValid")
        assert_that(quarantined, equal_to([
            ("r1", "events", "line 2", "dq_expectation_failed", f"failed expectation {IN_SET} [critical]", "E2"),
            ("r1", "events", "line 5", "dq_expectation_failed", f"failed expectation {BETWEEN} [warning]", "E5"),
        ]), label="CheckQuarantine")


def test_partial_results_combine_into_one_dq_row_per_expectation_over_the_whole_source(monkeypatch):
    def figures(row: dict) -> tuple:
        return row["expectation"], row["success"], row["element_count"], row["unexpected_count"], row["severity"]

    with BeamTestPipeline(runner="FnApiRunner") as p:
        checked = p | beam.Create(_batches()) | "ValidateMovements" >> _check(monkeypatch)
        rows = checked.results | "CombineDqResults" >> CombineDqResults(params=PARAMS)
        picked = rows | "Figures" >> beam.Map(figures) | "Picked" >> beam.Filter(lambda f: f[0] in (IN_SET, BETWEEN, ROW_COUNT))
        counted = rows | "RowCount" >> beam.Filter(lambda r: r["expectation"] == ROW_COUNT) | "Observed" >> beam.Map(
            lambda r: (r["run_id"], r["source"], r["suite"], json.loads(r["details"])["observed_value"]))
        assert_that(picked, equal_to([
            (IN_SET, False, 6, 1, "critical"),
            (BETWEEN, False, 6, 1, "warning"),
            # 3 rows per batch would each fail min_rows 5; the source's 6 pass.
            (ROW_COUNT, True, 6, 0, "warning"),
        ]), label="CheckFigures")
        assert_that(counted, equal_to([("r1", "events", "movement", 6)]), label="CheckObserved")
        partials = checked.results | "RowCountPartials" >> beam.Filter(lambda kv: kv[0][2] == ROW_COUNT) | "CountPartials" >> beam.combiners.Count.Globally()
        assert_that(partials, equal_to([2]), label="CheckTwoCalls")


def test_configuration_is_keyword_only():
    with pytest.raises(TypeError):
        CombineDqResults({})  # type: ignore[misc]
