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
    lines = [ln for ln in (WORLD / "inputs" / "events" / RUN_DATE / "events.jsonl").read_text().splitlines() if ln.strip()]
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
    from invrecon.pipelines.batch_plan import cutoff_for

    cutoff = cutoff_for(dt.date.fromisoformat(day2), tz)
    con = warehouse(out)
    seeds = dict(((s, ln), oh) for s, ln, oh in con.sql(f"SELECT sku, location, on_hand FROM inventory_snapshot WHERE snapshot_date = DATE '{day1}' AND on_hand IS NOT NULL").fetchall())
    batch = dict(((s, ln), oh) for s, ln, oh in con.sql(f"SELECT sku, location, on_hand FROM inventory_snapshot WHERE snapshot_date = DATE '{day2}' AND on_hand IS NOT NULL").fetchall())
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
    assert any(ln.endswith("ReadPubSub") for ln in labels)
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


def final_positions(output: pathlib.Path) -> dict[tuple[str, str], tuple[int, int, bool]]:
    """(sku, location) -> (on_hand, reserved, seeded) after the latest pane of its latest window."""
    rows = duckdb.sql(
        "SELECT sku, location, arg_max(on_hand_after, (window_start, pane_index)), arg_max(reserved_after, (window_start, pane_index)), "
        f"bool_and(seeded) FROM read_parquet('{output}/stream/position_changes/*/*.parquet') GROUP BY ALL"
    ).fetchall()
    return {(s, ln): (oh, r, seeded) for s, ln, oh, r, seeded in rows}


def published_copy(committed_run: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """The committed run's published Parquet and commit log, without warehouse.duckdb or any stream output."""
    shutil.copytree(committed_run, dst, ignore=shutil.ignore_patterns("warehouse.duckdb*", "stream"))
    return dst


def test_seeds_come_from_the_latest_snapshot(committed_run, tmp_path):
    """The launcher names the files of the latest published snapshot (commit log, footers); it reads no row."""
    out = published_copy(committed_run, tmp_path / "out")
    snap = stock_stream.latest_snapshot(str(out), "America/Chicago")
    assert snap is not None and snap.snapshot_date == dt.date.fromisoformat(RUN_DATE)
    expected = warehouse(committed_run).sql(f"SELECT count(*) FROM inventory_snapshot WHERE snapshot_date = DATE '{RUN_DATE}'").fetchall()[0][0]
    assert snap.rows == expected == 187
    assert snap.files and all(f.startswith(f"file://{out}/inventory_snapshot/snapshot_date={RUN_DATE}/") for f in snap.files)
    assert snap.as_of_micros == int(dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC).timestamp() * 1e6)
    # The same through a file:// URL; nothing published: no seeds.
    assert stock_stream.latest_snapshot(f"file://{out}", "America/Chicago") == snap
    assert stock_stream.latest_snapshot(str(tmp_path / "nothing"), "America/Chicago") is None


# The stream of the committed world's events, seeded from the committed world's batch, as the
# launcher-side seeds (read from warehouse.duckdb and embedded with beam.Create) gave it before
# the graph read them itself: `make run`, then the README's stream command with --output out.
BEFORE = {"seeds": 187, "panes": 199, "positions": 104, "on_hand": 22514, "reserved": 81, "alerts": 1}
BEFORE_ALERT = ("store_divergence", "SKU000007@S0004", "store counted 107 of SKU000007 at S0004 (STORE-20261130-000203, ",
                "events.jsonl: line 6); running position 104, tolerance 2.08")


def test_replay_seeds_from_the_published_snapshot_read_in_the_graph(committed_run, tmp_path, capsys):
    """Batch publishes D; the replay seeds from D's snapshot Parquet (no warehouse file there) and
    gives the positions the launcher-side seeds gave."""
    out = published_copy(committed_run, tmp_path / "out")
    assert stock_stream.main(["--config", str(WORLD / "config.yaml"), "--events", EVENTS, "--output", f"file://{out}"]) == 0
    assert f"seeded from inventory_snapshot {RUN_DATE}: {BEFORE['seeds']} positions" in capsys.readouterr().out
    assert not (out / "warehouse.duckdb").exists()
    final = final_positions(out)
    assert len(read(out, "position_changes").fetchall()) == BEFORE["panes"]
    assert len(final) == BEFORE["positions"] and all(seeded for _, _, seeded in final.values())
    assert sum(oh for oh, _, _ in final.values()) == BEFORE["on_hand"]
    assert sum(r for _, r, _ in final.values()) == BEFORE["reserved"]
    alerts = read(out, "alerts").select("rule, subject, message").fetchall()
    assert len(alerts) == BEFORE["alerts"]
    rule, subject, message = alerts[0]
    assert (rule, subject) == BEFORE_ALERT[:2] and message.startswith(BEFORE_ALERT[2]) and message.endswith(BEFORE_ALERT[3])
    # Seeds matter: without them every position starts at 0.
    assert stream(WORLD / "config.yaml", EVENTS, tmp_path / "unseeded", "--no-seed") == 0
    unseeded = final_positions(tmp_path / "unseeded")
    assert unseeded.keys() == final.keys() and not any(seeded for _, _, seeded in unseeded.values())
    assert sum(oh for oh, _, _ in unseeded.values()) != BEFORE["on_hand"]


def test_each_position_starts_from_its_snapshot_row(committed_run, tmp_path):
    """Per (sku, location), the position before its first event is the published snapshot's on_hand."""
    from apache_beam.testing.util import assert_that

    out = published_copy(committed_run, tmp_path / "out")
    job = stock_stream.plan_job(load_config(str(WORLD / "config.yaml")), events=EVENTS, output=str(out))
    snapshot = warehouse(committed_run).sql(f"SELECT sku, location, on_hand FROM inventory_snapshot WHERE snapshot_date = DATE '{RUN_DATE}'")
    seeds = {(s, ln): oh for s, ln, oh in snapshot.fetchall()}

    def starts_from_the_snapshot(tables):
        first: dict = {}
        for t in tables:  # a replay applies each bucket's events in one batch, in arrival order
            for r in t.to_pylist():
                first.setdefault((r["sku"], r["location"]), r)
        assert len(first) == BEFORE["positions"]
        for key, r in first.items():
            assert r["on_hand"] - r["on_hand_change"] == (seeds.get(key) or 0), key
            assert r["seeded"] == (seeds.get(key) is not None), key

    with beam.Pipeline(runner=stock_stream.local_runner()) as p:
        outputs = stock_stream.build(p, job)
        assert_that(outputs["updates"], starts_from_the_snapshot, label="CheckSeeds")
