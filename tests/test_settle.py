"""`SettleRun` on its own: ages the staged discrepancies and sums the run up in `_summary.json`."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected by pytest

from invrecon.pipelines.alerts import Thresholds
from invrecon.pipelines.settle import History, SettleRun
from invrecon.schemas import DISCREPANCIES, POSITION

DAY = dt.date(2026, 11, 30)
CUTOFF = dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC)


def _row(sku: str, klass: str, value: float) -> dict:
    return {"snapshot_date": DAY, "sku": sku, "location": "DC01", "record_system": "erp", "other_system": "wms",
            "class": klass, "delta": 1, "value_delta": value, "currency": "USD", "run_id": "r1"}


def _stage(staging, rows: list[dict]) -> None:
    (staging / "discrepancies_unaged").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=DISCREPANCIES), staging / "discrepancies_unaged" / "part-0.parquet")
    (staging / "positions").mkdir()
    pq.write_table(POSITION.empty_table(), staging / "positions" / "part-0.parquet")


def test_settle_ages_and_sums_the_value_at_stake_without_oversell_risk(tmp_path):
    staging = tmp_path / "staging"
    _stage(staging, [_row("A", "qty_mismatch", -150.25), _row("B", "timing", 40.0), _row("C", "oversell_risk", 999.0)])
    counts = [("read", "erp", 3), ("written", "erp", 2), ("quarantined:bad_quantity", "erp", 1)]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        staged = p | "Staged" >> beam.Create([str(staging / "discrepancies_unaged" / "part-0.parquet")])
        _ = p | "Counts" >> beam.Create(counts) | "SettleRun" >> SettleRun(
            staging=str(staging), run_id="r1", run_date=DAY, cutoff=CUTOFF, thresholds=Thresholds(),
            sources=(("erp", "erp", "positions"),), history=History(), written=(staged,),
        )
    summary = json.loads((staging / "_summary.json").read_text())
    assert summary["value_at_stake"] == pytest.approx(190.25) and summary["net_value"] == pytest.approx(-110.25)
    assert summary["classes"] == {"oversell_risk": 1, "qty_mismatch": 1, "timing": 1}
    assert summary["counts"] == [{"source": "erp", "read": 3, "written": 2, "quarantined": 1, "conserved": True, "unreadable": 0}]
    assert summary["quarantined_by_reason"] == [["erp", "bad_quantity", 1]] and summary["alerts"] == 0
    aged = pq.read_table(staging / "discrepancies" / "part-00000.parquet")
    assert aged.schema == DISCREPANCIES and set(aged["first_seen"].to_pylist()) == {DAY} and set(aged["age_days"].to_pylist()) == {0}


def test_settle_run_is_configured_by_keyword_only():
    with pytest.raises(TypeError):
        SettleRun("staging", "r1", DAY, CUTOFF, Thresholds(), (), History())  # type: ignore[misc]
