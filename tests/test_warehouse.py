"""The warehouse: aging across gaps and backfills (DESIGN.md §6.7), analyst views, re-aged alerts."""

from __future__ import annotations

import datetime as dt
import pathlib

import duckdb
import polars as pl
import pytest
import yaml

from invrecon.pipelines import alerts
from invrecon.pipelines.discrepancy_sql import AGE_KEY, aging_sql
from invrecon.pipelines.warehouse_views import VIEWS
from invrecon.schemas import EXPLAINED, NOT_AGED, UNEXPLAINED
from tests.conftest import ROOT, make_world, run_batch, warehouse

D1, D2, D3 = dt.date(2026, 11, 28), dt.date(2026, 11, 29), dt.date(2026, 11, 30)
PLANTED = 13  # units added to the ERP figure of a planted key: a qty_mismatch against the WMS


# ----------------------------------------------------------------------------- aging rule


def _aging(rows: list[tuple], run_dates: list[dt.date]) -> dict[tuple, tuple]:
    con = duckdb.connect()
    con.execute("CREATE TABLE o (snapshot_date DATE, sku VARCHAR, location VARCHAR, other_system VARCHAR, class VARCHAR)")
    con.executemany("INSERT INTO o VALUES (?, ?, 'L', 'wms', 'qty_mismatch')", rows)
    con.execute("CREATE TABLE r (run_date DATE)")
    con.executemany("INSERT INTO r VALUES (?)", [(d,) for d in run_dates])
    return {(d, sku): (first, age) for d, sku, _, _, _, first, age in con.execute(aging_sql("o", "r")).fetchall()}


def test_aging_counts_consecutive_run_dates_and_a_gap_does_not_reset():
    d = [dt.date(2026, 11, n) for n in (25, 26, 28, 29)]  # no run on 11-27
    rows = [(x, "k") for x in d] + [(d[0], "j"), (d[2], "j"), (d[3], "m")]
    got = _aging(rows, d)
    assert [got[(x, "k")] for x in d] == [(d[0], 0), (d[0], 1), (d[0], 3), (d[0], 4)]
    assert got[(d[2], "j")] == (d[2], 0)  # closed on the run of 11-26: a new streak
    assert got[(d[3], "m")] == (d[3], 0)


def test_backfilled_date_without_the_key_breaks_the_streak():
    d = [dt.date(2026, 11, n) for n in (25, 26, 28, 29)]
    rows = [(x, "k") for x in d]
    got = _aging(rows, d + [dt.date(2026, 11, 27)])
    assert got[(d[2], "k")] == (d[2], 0) and got[(d[3], "k")] == (d[2], 1)
    assert got[(d[1], "k")] == (d[0], 1)


def test_rows_of_dates_that_are_not_run_dates_are_ignored():
    d = [dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
    got = _aging([(d[0], "k"), (d[1], "k"), (dt.date(2026, 11, 27), "k")], d)
    assert set(got) == {(d[0], "k"), (d[1], "k")}


# ----------------------------------------------------------------------------- three run dates

_CACHE: dict[str, dict] = {}


def _plant(world: pathlib.Path) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two DC keys without any ground-truth discrepancy: A off on every day, B on D1 and D3."""
    gt = pl.read_csv(world / "ground_truth" / "discrepancies.csv")
    locs = pl.read_csv(world / "crosswalk" / "location.csv", infer_schema=False)
    skus = pl.read_csv(world / "crosswalk" / "sku.csv", infer_schema=False).filter(pl.col("id_type") == "erp_material")
    dc = locs.filter((pl.col("system") == "erp") & (pl.col("location_type") == "dc")).row(0, named=True)
    dirty = set(gt.filter(pl.col("location") == dc["location"])["sku"])
    clean = [r for r in skus.sort("sku").iter_rows(named=True) if r["sku"] not in dirty]
    planted = {}
    for (key, days) in zip("AB", ([D1, D2, D3], [D1, D3])):
        row = clean[len(planted)]
        planted[key] = (row["sku"], dc["location"])
        for day in days:
            path = world / "inputs" / "erp" / str(day) / "erp_stock.csv"
            lines = path.read_text().splitlines()
            hits = 0
            for i, line in enumerate(lines):
                f = line.split(",")
                if len(f) == 7 and f[0] == row["id_value"] and f[1] == dc["source_location"] and f[2].isdigit():
                    f[2] = str(int(f[2]) + PLANTED)
                    lines[i] = ",".join(f)
                    hits += 1
            assert hits == 1, (row, day)
            path.write_text("\n".join(lines) + "\n")
    cfg_path = world / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["alerts"] = {"discrepancy_age_days": 1, "unexplained_value_per_location": 1_000_000}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return planted["A"], planted["B"]


def _state(out: pathlib.Path, keys: dict[str, tuple[str, str]]) -> dict:
    con = warehouse(out)
    aged = {}
    for name, (sku, loc) in keys.items():
        for day, first, age, klass in con.execute(
            "SELECT snapshot_date, first_seen, age_days, class FROM discrepancies WHERE sku = ? AND location = ? AND other_system = 'wms' ORDER BY 1", [sku, loc]
        ).fetchall():
            assert klass == "qty_mismatch"
            aged[(name, day)] = (first, age)
    age_alerts = {r[0]: r[1] for r in con.execute("SELECT subject, observed FROM alerts WHERE rule = 'discrepancy_age_days' AND snapshot_date = ?", [D3]).fetchall()}
    return {"aged": aged, "age_alerts": age_alerts}


def three_day_runs(tmp_path_factory) -> dict:
    """A 3-day world with planted aged keys, run in order and as a backfill (D3, D1, D2); cached."""
    if not _CACHE:
        root = tmp_path_factory.mktemp("three_days")
        world = make_world(root / "world", days=3)
        a, b = _plant(world)
        keys = {"A": a, "B": b}
        cfg = world / "config.yaml"
        in_order, backfill = root / "in_order", root / "backfill"
        codes = [run_batch(cfg, str(day), output=in_order) for day in (D1, D2, D3)]
        steps = []
        for day in (D3, D1, D2):
            codes.append(run_batch(cfg, str(day), output=backfill))
            steps.append(_state(backfill, keys))
        assert codes == [0] * 6
        _CACHE.update(world=world, in_order=in_order, backfill=backfill, keys=keys, steps=steps, final=_state(in_order, keys))
    return _CACHE


@pytest.fixture(scope="session")
def three_days(tmp_path_factory) -> dict:
    return three_day_runs(tmp_path_factory)


def test_aging_over_three_consecutive_runs(three_days):
    aged = three_days["final"]["aged"]
    assert [aged[("A", d)] for d in (D1, D2, D3)] == [(D1, 0), (D1, 1), (D1, 2)]
    assert aged[("B", D1)] == (D1, 0) and aged[("B", D3)] == (D3, 0) and ("B", D2) not in aged
    subject = "{}/{}/wms/qty_mismatch"
    assert three_days["final"]["age_alerts"] == {subject.format(*three_days["keys"]["A"]): 2.0}  # max 1 day


def test_backfill_re_ages_later_dates(three_days):
    first, gap, filled = three_days["steps"]
    a, b = (f"{sku}/{loc}/wms/qty_mismatch" for sku, loc in (three_days["keys"]["A"], three_days["keys"]["B"]))
    # D3 alone: everything is new.
    assert first["aged"][("A", D3)] == (D3, 0) and first["age_alerts"] == {}
    # D1 loaded after D3, with no run of D2 yet: the gap is no evidence of closing, so D3 is
    # re-aged from D1 and its age alerts are re-evaluated.
    assert gap["aged"][("A", D3)] == (D1, 2) and gap["aged"][("B", D3)] == (D1, 2)
    assert {k: v for k, v in gap["age_alerts"].items() if k in (a, b)} == {a: 2.0, b: 2.0}
    # D2 backfilled: B was closed on D2, so its D3 streak restarts; A's continues.
    assert filled["aged"][("A", D3)] == (D1, 2) and filled["aged"][("A", D2)] == (D1, 1)
    assert filled["aged"][("B", D3)] == (D3, 0)
    assert a in filled["age_alerts"] and b not in filled["age_alerts"]
    # A fault of the world itself (open on D1 and D3, not D2) went the same way as B.
    assert set(gap["age_alerts"]) - set(filled["age_alerts"]) == {b} | (set(gap["age_alerts"]) - {a, b})
    assert filled == three_days["final"]


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def test_backfill_ends_where_the_in_order_runs_end(three_days):
    cols = "snapshot_date, sku, location, other_system, class, delta, value_delta, first_seen, age_days, run_id"
    a, b = warehouse(three_days["in_order"]), warehouse(three_days["backfill"])
    assert _table(a, f"SELECT {cols} FROM discrepancies") == _table(b, f"SELECT {cols} FROM discrepancies")
    alert_cols = "snapshot_date, rule, subject, threshold, observed, severity, message, run_id"
    assert _table(a, f"SELECT {alert_cols} FROM alerts") == _table(b, f"SELECT {alert_cols} FROM alerts")


def test_parquet_partitions_and_alerts_jsonl_agree_with_duckdb_after_backfill(three_days):
    out = three_days["backfill"]
    con = warehouse(out)
    cols = "snapshot_date, sku, location, other_system, class, first_seen, age_days"
    pq = duckdb.connect().execute(f"SELECT {cols} FROM read_parquet('{out}/discrepancies/*/*.parquet', hive_partitioning = false)")
    assert sorted(pq.fetchall()) == sorted(con.execute(f"SELECT {cols} FROM discrepancies").fetchall())
    for day in (D1, D2, D3):
        lines = alerts.read_jsonl(str(out / "reports" / str(day) / "alerts.jsonl"))
        want = con.execute("SELECT rule, subject, observed FROM alerts WHERE snapshot_date = ? ORDER BY rule, subject", [day]).fetchall()
        assert [(x["rule"], x["subject"], x["observed"]) for x in lines] == want
    assert sorted(p.name for p in (out / "discrepancies").iterdir()) == [f"snapshot_date={d}" for d in (D1, D2, D3)]
    assert not (out / "_staging").exists()


def _streaks(rows: list[tuple], run_dates: list[dt.date]) -> dict[tuple, tuple]:
    """The aging rule written out plainly, as the oracle for the SQL."""
    open_on = {}
    for r in rows:
        open_on.setdefault(r[1:], set()).add(r[0])
    out = {}
    for key, days in open_on.items():
        first = None
        for day in sorted(run_dates):
            if day in days:
                first = first or day
                out[(day, *key)] = (first, (day - first).days)
            else:
                first = None
    return out


def test_every_stored_age_follows_the_rule(three_days):
    con = warehouse(three_days["in_order"])
    run_dates = [r[0] for r in con.execute("SELECT run_date FROM runs WHERE status = 'succeeded'").fetchall()]
    rows = con.execute(f"SELECT snapshot_date, {', '.join(AGE_KEY)}, first_seen, age_days FROM discrepancies").fetchall()
    want = _streaks([r[:5] for r in rows], run_dates)
    assert {r[:5]: r[5:] for r in rows} == want
    assert max(age for *_, age in rows) == 2


# ----------------------------------------------------------------------------- views


def _df(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


def test_every_view_answers_and_is_documented(committed_run):
    con = warehouse(committed_run)
    docs = (ROOT / "docs" / "warehouse.md").read_text()  # the analyst's reference (pipelines.warehouse_docs)
    for name in VIEWS:
        con.execute(f"SELECT * FROM {name} LIMIT 1").fetchall()
        assert f"### `{name}`" in docs, f"view {name} is not documented in docs/warehouse.md"


def test_dimensions_keep_one_row_per_key_from_the_latest_run_date(three_days):
    for out in (three_days["in_order"], three_days["backfill"]):  # run D3 first, then D1, D2: D3 still wins
        con = warehouse(out)
        assert con.execute("SELECT count(*) = count(DISTINCT sku), min(run_date), max(run_date) FROM items").fetchall() == [(True, D3, D3)]
        assert con.execute("SELECT count(*) = count(DISTINCT location), min(run_date) FROM locations").fetchall() == [(True, D3)]
        published = sorted(p.name for p in (out / "items").iterdir())
        assert published == [f"run_date={d}" for d in (D1, D2, D3)]  # each run publishes its own master data


def test_inventory_record_accuracy_strict_and_within_tolerance(committed_run):
    con = warehouse(committed_run)
    snap = _df(con, "SELECT sku, location FROM inventory_snapshot")
    disc = _df(con, "SELECT sku, location, class, delta FROM discrepancies WHERE class <> 'oversell_risk'")
    strict_off = set(disc.filter((pl.col("class") != "in_transit") & (pl.col("delta") != 0)).select("sku", "location").iter_rows())
    tol_off = set(disc.filter(pl.col("class").is_in(list(UNEXPLAINED))).select("sku", "location").iter_rows())
    want = {}
    for sku, loc in snap.iter_rows():
        k, e, t = want.get(loc, (0, 0, 0))
        want[loc] = (k + 1, e + ((sku, loc) not in strict_off), t + ((sku, loc) not in tol_off))
    got = {r[0]: r[1:] for r in con.execute("SELECT location, keys, exact_keys, within_tolerance_keys, ira_strict, ira_tolerance FROM inventory_record_accuracy").fetchall()}
    assert {loc: g[:3] for loc, g in got.items()} == want
    for loc, (k, e, t) in want.items():
        assert got[loc][3] == round(e / k, 4) and got[loc][4] == round(t / k, 4)
    assert got["DC01"][1] < got["DC01"][0]  # the injected faults cost accuracy


def test_absolute_deviation_is_never_netted(committed_run):
    con = warehouse(committed_run)
    units = dict(con.execute("SELECT location, sum(abs(coalesce(on_hand, 0))) FROM inventory_snapshot GROUP BY 1").fetchall())
    var = dict(con.execute("SELECT location, sum(abs(delta)) FROM discrepancies WHERE class NOT IN ('oversell_risk', 'in_transit') GROUP BY 1").fetchall())
    rows = con.execute("SELECT location, record_units, abs_variance_units, net_variance_units, abs_deviation FROM absolute_deviation").fetchall()
    assert {r[0] for r in rows} == set(units)
    for loc, record_units, abs_units, net_units, deviation in rows:
        assert record_units == units[loc] and abs_units == var.get(loc, 0)
        assert deviation == round(abs_units / record_units, 6)
        assert abs(net_units) <= abs_units
    dc = next(r for r in rows if r[0] == "DC01")
    assert dc[2] > abs(dc[3])  # a shortage and a surplus do not cancel out


def test_value_variance_gross_net_and_unexplained(committed_run):
    con = warehouse(committed_run)
    disc = _df(con, "SELECT location, class, value_delta FROM discrepancies WHERE class <> 'oversell_risk'")
    for loc, gross, net, ugross, unet, egross in con.execute(
        "SELECT location, gross_value, net_value, unexplained_gross_value, unexplained_net_value, explained_gross_value FROM value_variance"
    ).fetchall():
        part = disc.filter(pl.col("location") == loc)
        unexp = part.filter(pl.col("class").is_in(list(UNEXPLAINED)))
        expl = part.filter(pl.col("class").is_in(list(EXPLAINED)))
        assert gross == round(part["value_delta"].abs().sum(), 2) and net == round(part["value_delta"].sum(), 2)
        assert ugross == round(unexp["value_delta"].abs().sum(), 2) and unet == round(unexp["value_delta"].sum(), 2)
        assert egross == round(expl["value_delta"].abs().sum(), 2)
        assert gross >= abs(net)


def test_oversell_aging_and_dq_trend_views(committed_run):
    con = warehouse(committed_run)
    assert con.execute("SELECT sku, channel, atp, published, excess_units FROM oversell_risk").fetchall() == [("SKU000034", "commerce", 314, 321, 7)]
    assert con.execute("SELECT sku, locations, channels, excess_units FROM oversell_risk_by_sku").fetchall() == [("SKU000034", 1, ["commerce"], 7)]
    classes = {r[0] for r in con.execute("SELECT DISTINCT class FROM discrepancy_aging").fetchall()}
    assert classes.isdisjoint(NOT_AGED) and "qty_mismatch" in classes
    assert con.execute("SELECT DISTINCT age_bucket FROM discrepancy_aging").fetchall() == [("0",)]
    counts = {c["source"]: (c["read"], c["quarantined"]) for c in con.execute("SELECT counts FROM runs").fetchall()[0][0]}
    trend = {r[0]: r[1:] for r in con.execute("SELECT source, records_read, records_quarantined, quarantine_rate FROM dq_trend").fetchall()}
    assert {s: t[:2] for s, t in trend.items()} == counts
    assert trend["stock_events"][2] == round(counts["stock_events"][1] / counts["stock_events"][0], 4)
