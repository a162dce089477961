"""Differential test: the Beam reconciliation equals an independent DuckDB SQL one, row for row.

The world is generated (~100k positions over ~2,000 SKUs and 64 locations) so the shuffle runs
over many buckets with real collisions; the committed world is too small to show bucketing bugs.
"""

from __future__ import annotations

import datetime as dt
import time

import duckdb
import pytest
import yaml

from invrecon.pipelines.batch import cutoff_for
from tests.conftest import make_world, run_batch
from tests.reference_sql import reference_discrepancies

RUN_DATE = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    world = make_world(root / "world", skus=2000, locations=64, seed=11)
    out = root / "out"
    t0 = time.monotonic()
    assert run_batch(world / "config.yaml", RUN_DATE.isoformat(), output=out, extra=["--buckets", "16"]) == 0
    print(f"\n100k differential batch run: {time.monotonic() - t0:.1f} s")
    return world, out


def test_beam_equals_sql_reference_row_for_row(big_run):
    world, out = big_run
    cfg = yaml.safe_load((world / "config.yaml").read_text())
    con = duckdb.connect()
    n_positions = con.execute(f"SELECT count(*) FROM read_parquet('{out}/positions/*/*.parquet') WHERE on_hand IS NOT NULL").fetchall()[0][0]
    assert n_positions >= 100_000
    want = reference_discrepancies(
        con, out=str(out), items_csv=str(world / "master/items.csv"), locations_csv=str(world / "crosswalk/location.csv"),
        run_date=RUN_DATE, cutoff_utc=cutoff_for(RUN_DATE, cfg["timezone"]), record_system=cfg["record_system"],
        tolerances=cfg["tolerances"],
    )
    got = con.execute(
        f"SELECT sku, location, other_system, class, record_qty, other_qty, delta, raw_delta, explained_qty "
        f"FROM read_parquet('{out}/discrepancies/*/*.parquet') ORDER BY ALL"
    ).fetchall()
    assert len(want) > 1000
    assert {r[3] for r in want} >= {"timing", "missing_in_other", "qty_mismatch", "oversell_risk"}
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    assert got == want, f"missing from Beam: {missing}\nextra in Beam: {extra}"


def test_generated_world_matches_its_ground_truth_too(big_run):
    world, out = big_run
    con = duckdb.connect()
    q = f"""
        SELECT sku, location, other_system, class, record_qty, other_qty, delta FROM read_parquet('{out}/discrepancies/*/*.parquet')
        EXCEPT SELECT sku, location, other_system, class, record_qty, other_qty, delta FROM read_csv('{world}/ground_truth/discrepancies.csv')
    """
    assert con.execute(q).fetchall() == []
    q2 = f"""
        SELECT sku, location, other_system, class, record_qty, other_qty, delta FROM read_csv('{world}/ground_truth/discrepancies.csv')
        EXCEPT SELECT sku, location, other_system, class, record_qty, other_qty, delta FROM read_parquet('{out}/discrepancies/*/*.parquet')
    """
    assert con.execute(q2).fetchall() == []
