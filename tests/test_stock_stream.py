"""`invrecon stream` end to end: replay of the committed world, sources, config, and the property
that streaming a day's events does not change (and agrees with) the nightly batch's positions."""

from __future__ import annotations

import csv
import datetime as dt
import json
import pathlib
import shutil

import apache_beam as beam
import duckdb
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from invrecon.pipelines import stock_stream
from invrecon.pipelines.config import ConfigError, load_config
from tests.conftest import RUN_DATE, WORLD, make_world, run_batch, warehouse

EVENTS = f"file://{WORLD}/inputs/events/{RUN_DATE}/*.jsonl"


def stream(config, events: str, output, *extra: str) -> int:
    return stock_stream.main(["--config", str(config), "--events", events, "--output", str(output), "--quiet", *extra])


def read(output: pathlib.Path, table: str) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(f"SELECT * FROM read_parquet('{output}/stream/{table}/*/*.parquet', hive_partitioning = true)")


def test_replay_of_the_committed_world_conserves_and_quarantines(tmp_path):
    out = tmp_path / "out"
    assert stream(WORLD / "config.yaml", EVENTS, out) == 0
    lines = [l for l in (WORLD / "inputs" / "events" / RUN_DATE / "events.jsonl").read_text().splitlines() if l.strip()]
    moves = read(out, "movements").fetchall()
    quarantine = read(out, "quarantine").df()
    assert len(moves) + len(quarantine) == len(lines)
    assert len({m[0] for m in moves}) == len(moves)  # one row per event_id
    # Every quarantine record of the ground truth, plus the events published after their window.
    with open(WORLD / "ground_truth" / "quarantine.csv") as f:
        truth = {(r["locator"], r["reason_code"]) for r in csv.DictReader(f) if r["source"] == "stock_events"}
    got = set(zip(quarantine["locator"], quarantine["reason_code"]))
    assert truth <= got
    late = {loc for loc, code in got - truth}
    assert {code for _, code in got - truth} == {"late_event"} and late
    for n in (int(loc.split()[1]) for loc in late):
        ev = json.loads(lines[n - 1])
        assert ev["published_at"] != ev["occurred_at"]
    assert quarantine["raw"].notna().all()
    # Same MOVEMENT schema as the batch, partitioned by event date.
    assert {p.name for p in (out / "stream" / "movements").iterdir()} == {"event_date=2026-11-30", "event_date=2026-12-01"}
    # A re-run replaces its own files.
    assert stream(WORLD / "config.yaml", EVENTS, out) == 0
    assert len(read(out, "movements").fetchall()) == len(moves)


def test_stream_then_batch_equals_batch_alone(tmp_path, committed_run):
    """The stream writes beside the batch, never into its tables: the nightly is unchanged."""
    out = tmp_path / "out"
    assert stream(WORLD / "config.yaml", EVENTS, out) == 0
    assert run_batch(WORLD / "config.yaml", output=out) == 0
    for table, key in (("inventory_snapshot", "sku, location"), ("discrepancies", "sku, location, other_system, class"), ("movements", "event_id")):
        cols = "* EXCLUDE (run_id)" if table != "movements" else "* EXCLUDE (run_date, file)"
        a = warehouse(committed_run).sql(f"SELECT {cols} FROM {table} ORDER BY {key}").fetchall()
        b = warehouse(out).sql(f"SELECT {cols} FROM {table} ORDER BY {key}").fetchall()
        assert a == b, table


def test_end_of_day_positions_agree_with_the_batch(tmp_path):
    """Seeded from day 1's snapshot, the stream's day-2 position at the cut-off is the batch's."""
    world = make_world(tmp_path / "world", skus=16, locations=4, days=2, seed=11, faults=False)
    cfg = world / "config.yaml"
    out = tmp_path / "out"
    day1, day2 = "2026-11-29", "2026-11-30"
    assert run_batch(cfg, day1, output=out) == 0
    # A day's events only: the generator's day-1 file also previews some day-2 events, which
    # its day-2 books do not carry (the nightly of day 2 never reads them either).
    events = f"file://{world}/inputs/events/{day2}/events.jsonl"
    assert stream(cfg, events, out) == 0
    assert run_batch(cfg, day2, output=out) == 0
    tz = load_config(str(cfg)).timezone
    from invrecon.pipelines.batch import cutoff_for

    cutoff = cutoff_for(dt.date.fromisoformat(day2), tz)
    con = warehouse(out)
    seeds = dict(((s, l), oh) for s, l, oh in con.sql(f"SELECT sku, location, on_hand FROM inventory_snapshot WHERE snapshot_date = DATE '{day1}' AND on_hand IS NOT NULL").fetchall())
    batch = dict(((s, l), oh) for s, l, oh in con.sql(f"SELECT sku, location, on_hand FROM inventory_snapshot WHERE snapshot_date = DATE '{day2}' AND on_hand IS NOT NULL").fetchall())
    changes = read(out, "position_changes").df()
    latest = changes.sort_values("pane_index").groupby(["window_start", "sku", "location"]).tail(1)
    upto = latest[latest["window_end"] <= cutoff + dt.timedelta(milliseconds=1)]
    moved = upto.groupby(["sku", "location"])["on_hand_change"].sum().to_dict()
    assert len(moved) > 5
    streamed = {k: seeds.get(k, 0) + moved.get(k, 0) for k in batch}
    assert streamed == batch


def test_streaming_config_errors_name_the_key(tmp_path, world_copy, capsys):
    cfg = world_copy / "config.yaml"
    text = cfg.read_text()
    cfg.write_text(text + "streaming:\n  window_minutes: -5\n")
    assert stream(cfg, EVENTS, tmp_path / "o") == 2
    assert "`streaming.window_minutes` must be a number > 0" in capsys.readouterr().err
    cfg.write_text(text + "streaming:\n  window_minutes: 60\n  allowed_lateness_minutes: 120\n  dedup_ttl_hours: 1\n")
    with pytest.raises(ConfigError, match="`streaming.dedup_ttl_hours` must cover"):
        stock_stream.streaming_params(load_config(str(cfg)))
    cfg.write_text(text + "streaming:\n  windw_minutes: 5\n")
    assert stream(cfg, EVENTS, tmp_path / "o") == 2
    assert "`streaming.windw_minutes` is not a streaming setting" in capsys.readouterr().err


def test_bad_events_option_is_a_usage_error(tmp_path, capsys):
    assert stream(WORLD / "config.yaml", "file:///nowhere/*.jsonl", tmp_path / "o") == 2
    assert "--events file:///nowhere/*.jsonl: no files match" in capsys.readouterr().err
    assert stream(WORLD / "config.yaml", "mqtt://broker/topic", tmp_path / "o") == 2
    assert "--events 'mqtt://broker/topic'" in capsys.readouterr().err
    assert stream(WORLD / "config.yaml", "pubsub://projects/x/subscriptions/s", tmp_path / "o") == 2
    assert "Invalid PubSub project name" in capsys.readouterr().err


def test_pubsub_graph_builds_offline(tmp_path):
    cfg = load_config(str(WORLD / "config.yaml"))
    job = stock_stream.plan_job(cfg, events="pubsub://projects/acme-retail/subscriptions/stock-events", output=str(tmp_path), seed=False)
    opts = PipelineOptions()
    opts.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=opts)
    outputs = stock_stream.build(p, job)
    proto = p.to_runner_api()
    labels = {t.unique_name for t in proto.components.transforms.values()}
    assert any(l.endswith("ReadPubSub") for l in labels)
    assert {"StockEvents/GateLateness/GroupByExpiry", "RunningPosition/ApplyMovements", "WriteMovements/WriteBundles"} <= labels
    assert set(outputs) >= {"movements", "quarantine", "alerts", "position_changes"}


def test_kafka_without_a_reachable_expansion_service_exits_2(tmp_path, capsys):
    events = "kafka://localhost:9092/stock-events"
    assert stream(WORLD / "config.yaml", events, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "--expansion_service" in err and "expansion service" in err and "Traceback" not in err
    assert stream(WORLD / "config.yaml", events, tmp_path / "o", "--expansion_service", "localhost:1") == 2
    assert "--expansion_service localhost:1: no expansion service reachable" in capsys.readouterr().err
    assert stream(WORLD / "config.yaml", events, tmp_path / "o", "--expansion_service", str(tmp_path / "missing.jar")) == 2
    assert "no such jar file" in capsys.readouterr().err


def test_seeds_come_from_the_latest_snapshot(committed_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(committed_run, out)
    day, seeds = stock_stream.load_seeds(str(out), "America/Chicago")
    assert day == dt.date.fromisoformat(RUN_DATE) and seeds
    (key, (kind, payload)) = seeds[0]
    assert kind == "seed" and payload["as_of"] == int(dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.timezone.utc).timestamp() * 1e6)
