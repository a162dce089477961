"""Alert thresholds: config validation, each rule firing exactly when crossed, batch wiring."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from invrecon.pipelines import alerts
from invrecon.pipelines.alerts import Rule, evaluate, parse_thresholds
from invrecon.pipelines.config import ConfigError, load_config
from invrecon.schemas import ALERTS, DISCREPANCIES, POSITION
from tests.conftest import WORLD, run_batch, warehouse

DAY = dt.date(2026, 11, 30)
CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC)  # 23:59:59.999 Chicago


def _disc(*rows: dict) -> pa.Table:
    base = {"snapshot_date": DAY, "location": "DC01", "record_system": "erp", "other_system": "wms", "currency": "USD", "age_days": 0, "first_seen": DAY}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=DISCREPANCIES)


def _pos(*rows: dict) -> pa.Table:
    base = {"sku": "SKU1", "location": "DC01", "on_hand": 1}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=POSITION)


def _eval(section: dict, disc: pa.Table | None = None, pos: pa.Table | None = None, **kw) -> list[dict]:
    con = duckdb.connect()
    con.register("d", disc if disc is not None else DISCREPANCIES.empty_table())
    con.register("p", pos if pos is not None else POSITION.empty_table())
    out = evaluate(con, parse_thresholds(section), discrepancies="d", positions="p", snapshot_date=DAY, cutoff=CUTOFF, run_id="r1", **kw)
    assert out.schema == ALERTS
    return out.to_pylist()


# ----------------------------------------------------------------------------- config


def test_thresholds_accept_numbers_and_mappings():
    t = parse_thresholds({
        "unexplained_value_per_location": 2500,
        "oversell_units_per_sku": {"max": 5, "severity": "critical"},
        "source_lag_hours": {"max": 6, "by_system": {"store": 12, "commerce": 1.5}},
    })
    assert t.unexplained_value_per_location == Rule(2500.0, "critical")
    assert t.oversell_units_per_sku == Rule(5.0, "critical")
    assert t.discrepancy_age_days is None
    assert t.source_lag_hours.max_for("store") == 12 and t.source_lag_hours.max_for("wms") == 6
    only = parse_thresholds({"source_lag_hours": {"by_system": {"store": 12}}}).source_lag_hours
    assert only.max_for("store") == 12 and only.max_for("wms") is None
    assert not parse_thresholds(None).any


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ([1, 2], "`alerts` must be a mapping"),
        ({"unexplained_value": 5}, "`alerts.unexplained_value` is not an alert rule"),
        # The config schema's wording (`schemas.config.Alerts`): a rule given as a number is its `max`.
        ({"oversell_units_per_sku": -1}, "`alerts.oversell_units_per_sku.max` must be a number >= 0, got -1"),
        ({"oversell_units_per_sku": True}, "`alerts.oversell_units_per_sku` must be a number"),
        ({"oversell_units_per_sku": None}, "`alerts.oversell_units_per_sku` needs a threshold"),
        ({"discrepancy_age_days": {"max": "3"}}, "`alerts.discrepancy_age_days.max` must be a number"),
        ({"discrepancy_age_days": {"severity": "warning"}}, "missing required key `alerts.discrepancy_age_days.max`"),
        ({"discrepancy_age_days": {"max": 3, "severity": "loud"}}, "`alerts.discrepancy_age_days.severity` is 'loud'"),
        ({"discrepancy_age_days": {"max": 3, "by_system": {}}}, "`alerts.discrepancy_age_days.by_system` is not a setting"),
        ({"source_lag_hours": {"max": 6, "by_system": {"store": "x"}}}, "`alerts.source_lag_hours.by_system.store` must be a number"),
        ({"source_lag_hours": {"max": 6, "by_system": [1]}}, "`alerts.source_lag_hours.by_system` must be a mapping"),
    ],
)
def test_bad_thresholds_name_the_key_path(section, where):
    with pytest.raises(ConfigError) as e:
        parse_thresholds(section, uri="cfg.yaml")
    assert str(e.value).startswith("cfg.yaml: ") and where in str(e.value)


def test_committed_world_config_has_thresholds():
    cfg = load_config(str(WORLD / "config.yaml"))
    t = alerts.load_thresholds(cfg)
    assert t.unexplained_value_per_location.max == 5000 and t.source_lag_hours.max_for("commerce") == 2
    assert t == parse_thresholds(cfg.raw["alerts"], uri=cfg.uri)  # one validation: the config schema's


# ----------------------------------------------------------------------------- crossing


def test_unexplained_value_fires_only_above_the_maximum_in_cents():
    disc = _disc(
        {"sku": "A", "class": "qty_mismatch", "delta": -3, "value_delta": -833.33},
        {"sku": "B", "class": "qty_mismatch", "delta": 3, "value_delta": 833.33},
        {"sku": "C", "class": "missing_in_other", "delta": -1, "value_delta": -833.34},  # Σ = 2500.00 (float: 2500.0000000000005)
        {"sku": "D", "class": "timing", "delta": 0, "value_delta": 9000.0},
        {"sku": "E", "class": "in_transit", "delta": 5, "value_delta": 9000.0},
        {"sku": "F", "class": "within_tolerance", "delta": 1, "value_delta": 9000.0},
        {"sku": "G", "class": "oversell_risk", "delta": 1, "value_delta": 9000.0},
        {"sku": "H", "class": "qty_mismatch", "delta": 9, "value_delta": 9000.0, "location": "S0001"},
    )
    at = _eval({"unexplained_value_per_location": 2500}, disc)
    assert [(a["subject"], a["observed"]) for a in at] == [("S0001", 9000.0)]
    below = _eval({"unexplained_value_per_location": 2499.99}, disc)
    assert [(a["subject"], a["observed"], a["threshold"], a["severity"]) for a in below] == [("DC01", 2500.0, 2499.99, "critical"), ("S0001", 9000.0, 2499.99, "critical")]
    assert "DC01: 3 unexplained discrepancies worth 2,500.00 USD" in below[0]["message"]


def test_unexplained_value_per_currency_names_the_currency():
    disc = _disc(
        {"sku": "A", "class": "qty_mismatch", "delta": 1, "value_delta": 10.0},
        {"sku": "B", "class": "qty_mismatch", "delta": 1, "value_delta": 20.0, "currency": "EUR"},
    )
    assert [a["subject"] for a in _eval({"unexplained_value_per_location": 5}, disc)] == ["DC01 EUR", "DC01 USD"]


def test_oversell_units_sum_over_locations_and_channels_per_sku():
    disc = _disc(
        {"sku": "A", "class": "oversell_risk", "delta": 3, "other_system": "commerce"},
        {"sku": "A", "class": "oversell_risk", "delta": 2, "other_system": "marketplace", "location": "DC02"},
        {"sku": "B", "class": "oversell_risk", "delta": 4, "other_system": "commerce"},
        {"sku": "C", "class": "qty_mismatch", "delta": 50},
    )
    assert _eval({"oversell_units_per_sku": 5}, disc) == []
    fired = _eval({"oversell_units_per_sku": 4}, disc)
    assert [(a["subject"], a["observed"]) for a in fired] == [("A", 5.0)]
    assert "2 location(s) by commerce, marketplace" in fired[0]["message"]


def test_discrepancy_age_fires_above_max_and_ignores_timing_and_tolerance():
    disc = _disc(
        {"sku": "A", "class": "qty_mismatch", "delta": 1, "age_days": 3, "first_seen": DAY - dt.timedelta(days=3)},
        {"sku": "B", "class": "timing", "delta": 0, "age_days": 30},
        {"sku": "C", "class": "within_tolerance", "delta": 1, "age_days": 30},
        {"sku": "D", "class": "oversell_risk", "delta": 1, "age_days": 2, "other_system": "commerce"},
    )
    assert _eval({"discrepancy_age_days": 3}, disc) == []
    fired = _eval({"discrepancy_age_days": 2}, disc)
    assert [(a["subject"], a["observed"]) for a in fired] == [("A/DC01/wms/qty_mismatch", 3.0)]
    assert [a["subject"] for a in _eval({"discrepancy_age_days": 1.5}, disc)] == ["A/DC01/wms/qty_mismatch", "D/DC01/commerce/oversell_risk"]


def test_source_lag_per_system_fires_above_max():
    three_h = CUTOFF - dt.timedelta(hours=3)  # 20:59:59.999 local: 3.00 h before the cut-off
    pos = _pos(
        {"system": "store", "source": "store_counts", "location": "S0001", "as_of": three_h},
        {"system": "store", "source": "store_counts", "location": "S0001", "as_of": three_h - dt.timedelta(hours=5), "sku": "SKU2"},
        {"system": "store", "source": "store_counts", "location": "S0002", "as_of": three_h - dt.timedelta(seconds=36)},  # 3.01 h
        {"system": "erp", "source": "erp_nightly", "location": "DC01", "as_of": CUTOFF + dt.timedelta(minutes=30)},  # after it
        {"system": "commerce", "source": "commerce_availability", "location": "DC01", "as_of": CUTOFF - dt.timedelta(hours=1)},
    )
    fired = _eval({"source_lag_hours": {"max": 3, "by_system": {"commerce": 0.5}}}, pos=pos)
    assert [(a["subject"], a["observed"], a["threshold"]) for a in fired] == [
        ("commerce_availability/DC01", 1.0, 0.5),
        ("store_counts/S0002", 3.01, 3.0),
    ]
    assert _eval({"source_lag_hours": {"max": 3, "by_system": {"commerce": 1}}}, pos=pos)[-1]["subject"] == "store_counts/S0002"
    assert _eval({"source_lag_hours": {"max": 3.01, "by_system": {"commerce": 1}}}, pos=pos) == []
    # Only the listed systems are checked when there is no default `max`.
    assert [a["subject"] for a in _eval({"source_lag_hours": {"by_system": {"store": 2.99}}}, pos=pos)] == ["store_counts/S0001", "store_counts/S0002"]


def test_source_that_sent_no_positions_fires_with_null_observed():
    pos = _pos({"system": "erp", "source": "erp_nightly", "location": "DC01", "as_of": CUTOFF})
    sources = [("erp_nightly", "erp", "positions"), ("store_counts", "store", "positions"), ("stock_events", None, "events"), ("tpl_asn", "wms", "edi")]
    fired = _eval({"source_lag_hours": 6}, pos=pos, sources=sources)
    assert [(a["subject"], a["observed"]) for a in fired] == [("store_counts/*", None)]


def test_no_rules_no_alerts_and_only_filters():
    disc = _disc({"sku": "A", "class": "qty_mismatch", "delta": 1, "value_delta": 1e6, "age_days": 99})
    assert _eval({}, disc) == []
    assert [a["rule"] for a in _eval({"unexplained_value_per_location": 1, "discrepancy_age_days": 1}, disc, only=("discrepancy_age_days",))] == ["discrepancy_age_days"]


def test_jsonl_round_trip(tmp_path):
    disc = _disc({"sku": "A", "class": "qty_mismatch", "delta": 1, "value_delta": 10.0})
    con = duckdb.connect()
    con.register("d", disc)
    table = evaluate(con, parse_thresholds({"unexplained_value_per_location": 1}), discrepancies="d", positions=None, snapshot_date=DAY, cutoff=None, run_id="r1")
    path = tmp_path / "x" / "alerts.jsonl"
    alerts.write_jsonl(table, str(path))
    assert alerts.read_jsonl(str(path)) == [{**r, "snapshot_date": "2026-11-30"} for r in table.to_pylist()]


# ----------------------------------------------------------------------------- batch


def test_batch_loads_alerts_and_writes_alerts_jsonl(committed_run):
    con = warehouse(committed_run)
    rows = con.execute("SELECT rule, subject, threshold, observed, severity FROM alerts ORDER BY rule, subject").fetchall()
    # The committed world's thresholds: DC01's unexplained value and SKU000034's oversell.
    assert rows == [
        ("oversell_units_per_sku", "SKU000034", 5.0, 7.0, "warning"),
        ("unexplained_value_per_location", "DC01", 5000.0, 14183.79, "critical"),
    ]
    observed = con.execute("""
        SELECT sum(abs(value_delta)) FROM discrepancies
        WHERE location = 'DC01' AND class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')""").fetchall()[0][0]
    assert observed == Decimal("14183.79") and float(observed) == rows[1][3]  # the warehouse's money is exact
    lines = alerts.read_jsonl(str(committed_run / "reports" / "2026-11-30" / "alerts.jsonl"))
    assert [(a["rule"], a["subject"], a["threshold"], a["observed"], a["severity"]) for a in lines] == rows


def test_fail_on_alert_exits_5_and_0_without_alerts(world_copy, tmp_path):
    assert run_batch(world_copy / "config.yaml", output=tmp_path / "a", extra=["--fail-on-alert"]) == 5
    cfg = world_copy / "config.yaml"
    text = cfg.read_text()
    cfg.write_text(text[: text.index("alerts:")] + "alerts:\n  unexplained_value_per_location: 14183.79\n  oversell_units_per_sku: 7\n")
    assert run_batch(cfg, output=tmp_path / "b", extra=["--fail-on-alert"]) == 0
    assert warehouse(tmp_path / "b").execute("SELECT count(*) FROM alerts").fetchall()[0][0] == 0
    assert (tmp_path / "b" / "reports" / "2026-11-30" / "alerts.jsonl").read_text() == ""
