"""Golden end-to-end test: the committed world through `invrecon batch` against its ground truth."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from tests.conftest import RUN_DATE, WORLD, run_batch, warehouse

KEY = ["snapshot_date", "sku", "location", "other_system", "class"]
QTY = ["record_qty", "other_qty", "delta", "raw_delta", "explained_qty"]


def _expected() -> pl.DataFrame:
    gt = pl.read_csv(WORLD / "ground_truth" / "discrepancies.csv", schema_overrides={c: pl.Int64 for c in QTY})
    return gt.select(KEY + QTY + ["value_delta"]).sort(KEY)


def _actual(out) -> pl.DataFrame:
    con = warehouse(out)
    df = pl.from_arrow(con.sql(f"SELECT CAST(snapshot_date AS VARCHAR) AS snapshot_date, {', '.join(KEY[1:] + QTY)}, value_delta FROM discrepancies").to_arrow_table())
    return df.sort(KEY)


def test_every_ground_truth_discrepancy_with_exact_quantities_and_nothing_else(committed_run):
    expected, actual = _expected(), _actual(committed_run)
    assert set(expected["class"]) == {"missing_in_other", "missing_in_record", "in_transit", "timing", "within_tolerance", "qty_mismatch", "oversell_risk"}
    assert actual.select(KEY + QTY).rows() == expected.select(KEY + QTY).rows()
    # value_delta is DECIMAL(18,4) in the warehouse: equal to the ground truth's cents exactly.
    for got, want in zip(actual["value_delta"], expected["value_delta"]):
        assert got == Decimal(repr(want)), (got, want)


def test_quarantine_matches_ground_truth_with_reason_codes(committed_run):
    gt = pl.read_csv(WORLD / "ground_truth" / "quarantine.csv")
    want = sorted((r["source"], r["file"], r["locator"], r["reason_code"]) for r in gt.iter_rows(named=True))
    con = warehouse(committed_run)
    rows = con.execute("SELECT source, file, locator, reason_code FROM quarantine").fetchall()
    root = str(WORLD) + "/"
    got = sorted((s, f.replace(root, ""), loc, code) for s, f, loc, code in rows)
    assert got == want
    reasons = con.execute("SELECT count(*) FROM quarantine WHERE reason IS NULL OR reason = ''").fetchall()[0][0]
    assert reasons == 0


def test_conservation_recorded_in_runs(committed_run):
    con = warehouse(committed_run)
    status, counts = con.execute("SELECT status, counts FROM runs").fetchall()[0]
    assert status == "succeeded"
    assert {c["source"] for c in counts} == {"erp_nightly", "tpl_edi", "store_counts", "commerce_availability", "stock_events"}
    for c in counts:
        assert c["read"] == c["written"] + c["quarantined"], c
        assert c["read"] > 0


def test_runs_row_has_input_checksums(committed_run):
    con = warehouse(committed_run)
    inputs = con.execute("SELECT inputs FROM runs").fetchall()[0][0]
    files = sorted(str(p) for p in (WORLD / "inputs").rglob("*") if p.is_file())
    assert sorted(i["uri"] for i in inputs) == files
    assert all(len(i["sha256"]) == 64 and i["size"] > 0 for i in inputs)


def test_snapshot_covers_every_key_with_record_system_on_hand(committed_run):
    con = warehouse(committed_run)
    n, not_in_record = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'not_in_record') FROM inventory_snapshot").fetchall()[0]
    assert n == con.execute("SELECT count(DISTINCT (sku, location)) FROM positions WHERE on_hand IS NOT NULL").fetchall()[0][0]
    assert not_in_record == 1  # the injected missing_in_record key
    wms = con.execute("SELECT qty_by_system['wms'], on_hand FROM inventory_snapshot WHERE status = 'matched' AND location = 'DC01' LIMIT 1").fetchall()[0]
    assert wms[0] == wms[1]


def test_movements_are_deduplicated_and_partitioned_by_event_date(committed_run):
    con = warehouse(committed_run)
    n, distinct = con.execute("SELECT count(*), count(DISTINCT event_id) FROM movements").fetchall()[0]
    assert n == distinct > 0
    parts = sorted(p.name for p in (committed_run / "movements").iterdir())
    assert parts == ["event_date=2026-11-30", "event_date=2026-12-01"]


def test_rerun_replaces_the_date_and_yields_the_same_rows(tmp_path, committed_run):
    out = tmp_path / "out"
    assert run_batch(WORLD / "config.yaml", output=out) == 0
    first = _actual(out)
    first_q = warehouse(out).execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert run_batch(WORLD / "config.yaml", output=out) == 0
    assert _actual(out).rows() == first.rows()
    con = warehouse(out)
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == first_q
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 1
    assert not (out / "_staging").exists()
    assert sorted(p.name for p in (out / "discrepancies").iterdir()) == [f"snapshot_date={RUN_DATE}"]
