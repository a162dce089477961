"""The command line as a new user meets it: init, check, --version, help, logs and progress."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from invrecon.pipelines import check, cli, init
from invrecon.pipelines.progress import READ_LOGGER, Progress
from tests.conftest import ROOT, RUN_DATE, WORLD, run_batch, run_cli

# ----------------------------------------------------------------------------- init and check


def _fill_in(starter: pathlib.Path, world: pathlib.Path = WORLD) -> None:
    """Do what the starter files ask: every FILL_IN replaced, the crosswalks and items filled in."""
    cfg = (starter / "config.yaml").read_text().replace("timezone: FILL_IN", "timezone: America/Chicago")
    for feed, glob in (("erp", "*.csv"), ("edi", "*"), ("events", "*.jsonl")):
        cfg = cfg.replace(f"FILL_IN/{feed}/{{run_date}}/{glob}", f"{world}/inputs/{feed}/{{run_date}}/{glob}")
    (starter / "config.yaml").write_text(cfg)
    mapping = (starter / "mappings" / "erp.yaml").read_text()
    for placeholder, column in (("item", "MATNR"), ("location", "WERKS"), ("quantity", "LABST"), ("timestamp", "SNAPSHOT_TS")):
        mapping = mapping.replace(f"FILL_IN_{placeholder}_column:", f"{column}:")
    (starter / "mappings" / "erp.yaml").write_text(mapping)
    for rel in ("crosswalk/sku.csv", "crosswalk/location.csv", "master/items.csv"):
        shutil.copy(world / rel, starter / rel)


def test_init_writes_the_starter_files_and_never_overwrites_without_force(tmp_path, capsys):
    starter = tmp_path / "recon"
    assert init.main([str(starter)]) == 0
    assert sorted(p.relative_to(starter).as_posix() for p in starter.rglob("*") if p.is_file()) == sorted(init.TEMPLATES)
    assert "invrecon check --config" in capsys.readouterr().out
    (starter / "config.yaml").write_text("# mine\n")
    assert init.main([str(starter)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.yaml already exists" in err and "--force" in err
    assert (starter / "config.yaml").read_text() == "# mine\n"  # nothing written
    assert init.main([str(starter), "--force"]) == 0
    assert "FILL_IN" in (starter / "config.yaml").read_text()


def test_the_unfilled_starter_config_is_one_line_from_check_not_a_traceback(tmp_path):
    starter = tmp_path / "recon"
    assert init.main([str(starter)]) == 0
    r = run_cli("check", "--config", starter / "config.yaml", "--run-date", RUN_DATE, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "not filled in yet" in r.stderr and "`timezone`" in r.stderr and "`sources[0].path`" in r.stderr


def test_a_mapping_left_unfilled_is_one_line_naming_the_mapping(tmp_path, capsys):
    starter = tmp_path / "recon"
    init.main([str(starter)])
    _fill_in(starter)
    shutil.copy(ROOT / "pipelines" / "templates" / "init" / "mappings" / "erp.yaml", starter / "mappings" / "erp.yaml")
    assert check.main(["--config", str(starter / "config.yaml"), "--run-date", RUN_DATE]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mappings/erp.yaml" in err and "`columns.FILL_IN_item_column`" in err and "sources[0]" in err


def test_the_filled_in_starter_passes_check_and_the_batch_runs_it(tmp_path, capsys):
    starter = tmp_path / "recon"
    init.main([str(starter)])
    _fill_in(starter)
    capsys.readouterr()
    assert check.main(["--config", str(starter / "config.yaml"), "--run-date", RUN_DATE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines[:3]] == [["erp_nightly", "positions", "1"], ["wms_edi", "edi", "2"], ["stock_events", "events", "1"]]
    assert lines[3].startswith("ok: 3 sources, 4 input files for 2026-11-30")
    assert run_batch(starter / "config.yaml", output=tmp_path / "out") == 0


def _uncommented(text: str) -> str:
    """The starter config with its commented-out examples (sources, alerts, streaming) switched on."""
    out, block = [], None
    for line in text.splitlines():
        if line.startswith(("# alerts:", "# streaming:")):
            block = "top"
        elif line.startswith("  # - name:"):
            block = "source"
        elif block == "top" and not line.startswith("#"):
            block = None
        elif block == "source" and not line.startswith("  #"):
            block = None
        out.append(line[2:] if block == "top" else ("  " + line[4:] if block == "source" else line))
    return "\n".join(out)


def test_the_starter_configs_commented_out_examples_are_valid_config(tmp_path):
    from invrecon.pipelines.alerts import parse_thresholds
    from invrecon.schemas.config import ConfigDoc, MappingDoc, schema_errors

    templates = ROOT / "pipelines" / "templates" / "init"
    text = _uncommented((templates / "config.yaml").read_text()).replace("timezone: FILL_IN", "timezone: UTC")
    doc = yaml.safe_load(text.replace("FILL_IN", "/data"))
    assert [s["name"] for s in doc["sources"]] == ["erp_nightly", "wms_edi", "stock_events", "store_counts", "commerce_availability"]
    assert {"alerts", "streaming", "quality", "tolerances"} <= set(doc)
    assert schema_errors(ConfigDoc, doc) == []
    assert parse_thresholds(doc["alerts"], uri="config.yaml").source_lag_hours.max == 6
    for mapping in (templates / "mappings").glob("*.yaml"):
        assert schema_errors(MappingDoc, yaml.safe_load(mapping.read_text().replace("FILL_IN_", ""))) == [], mapping


def test_check_exit_codes_on_the_world(world_copy, tmp_path, capsys):
    cfg = str(world_copy / "config.yaml")
    out = tmp_path / "out"
    assert check.main(["--config", cfg, "--run-date", RUN_DATE, "--output", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and re.match(r"store_counts\s+positions\s+5 files\s+\S+/inputs/store/2026-11-30/\*\.parquet$", lines[2])
    assert not out.exists()  # check writes nothing
    assert check.main(["--config", cfg, "--run-date", "2026-12-25", "--output", str(out)]) == 4
    err = capsys.readouterr().err
    assert "source erp_nightly: no input files match" in err and "inputs/erp/2026-12-25/*.csv" in err
    assert check.main(["--config", cfg, "--run-date", "2026-12-25", "--output", str(out), "--allow-missing", "all"]) == 0
    assert check.main(["--config", cfg, "--run-date", "30/11/2026"]) == 2
    assert "--run-date" in capsys.readouterr().err
    (world_copy / "config.yaml").write_text((world_copy / "config.yaml").read_text().replace("tolerances:", "tolerance:"))
    assert check.main(["--config", cfg, "--run-date", RUN_DATE]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "did you mean `tolerances`?" in err


def test_check_finds_a_broken_crosswalk(world_copy, capsys):
    sku = world_copy / "crosswalk" / "sku.csv"
    sku.write_text(sku.read_text() + "gtin,12345,SKU000001,1\n")
    assert check.main(["--config", str(world_copy / "config.yaml"), "--run-date", RUN_DATE]) == 2
    assert "sku.csv" in capsys.readouterr().err


# ----------------------------------------------------------------------------- version and help


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"invrecon {importlib.metadata.version('invrecon')}\n"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_shows_the_defaults(command, capsys):
    module = importlib.import_module(cli.COMMANDS[command][0])
    try:
        code = module.main(["--help"])
    except SystemExit as done:  # argparse's own exit
        code = done.code
    assert code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "None)" not in text and "(default: False)" not in text
    expected = {"batch": ["--buckets BUCKETS hash buckets of the (sku, location) shuffle (default: 32)",
                          "Beam pipeline options pass through to Beam unchanged"],
                "stream": ["Beam pipeline options pass through to Beam unchanged"],
                "fixtures": ["(default: 40)"], "sql": ["(default: 40)"], "report": ["(default: html,xlsx,csv)"],
                "warehouse": ["(default: 60.0)"]}
    for fragment in expected.get(command, []):
        assert fragment in text


# ----------------------------------------------------------------------------- logs


@pytest.fixture
def json_logs():
    """`pipelines.logs.configure` on a StringIO (not a terminal); the logging setup restored after."""
    from invrecon.pipelines import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("apache_beam", "great_expectations", *logs.DATAFLOW_LINES)})
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_gx_lines_stay_out_and_the_dataflow_job_url_comes_through(json_logs):
    beam_client = "apache_beam.runners.dataflow.internal.apiclient"
    source = pathlib.Path(importlib.util.find_spec(beam_client).origin).read_text()
    assert "To access the Dataflow monitoring console" in source and "_LOGGER = logging.getLogger(__name__)" in source
    gx = logging.getLogger("great_expectations.data_context.types.base")
    gx.setLevel(logging.INFO)  # as GX sets it itself
    gx.info("Created temporary directory '/tmp/x' for ephemeral docs site")
    gx.warning("a GX warning")
    client = logging.getLogger(beam_client)
    client.info("Create job: %s", "<a long proto>")
    client.info("To access the Dataflow monitoring console, please navigate to https://console.cloud.google.com/dataflow/jobs/%s/%s?project=%s",
                "us-central1", "2026-12-01_00_00_00-123", "acme")
    logging.getLogger("apache_beam.runners.portability.fn_api_runner").info("chatter")
    records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [r["msg"] for r in records] == [
        "a GX warning",
        "To access the Dataflow monitoring console, please navigate to "
        "https://console.cloud.google.com/dataflow/jobs/us-central1/2026-12-01_00_00_00-123?project=acme",
    ]


def test_a_stage_line_carries_run_id_stage_duration_and_counts(json_logs):
    screen = io.StringIO()
    progress = Progress(label="invrecon batch 2026-11-30", total_files=3, live=True, stream=screen)
    progress.run_id = "2026-11-30-abc"
    progress.begin("plan")
    logging.getLogger(READ_LOGGER).debug("read", extra={"files_read": 1, "records_read": 7})  # counted, not printed
    assert progress.read_so_far() == (1, 7)
    assert progress.line().startswith("invrecon batch 2026-11-30 | plan | files read 1/3 | records 7 | elapsed 0:0")
    progress.end(input_files=3)
    progress.close()
    assert logging.getLogger(READ_LOGGER).level == logging.NOTSET and not logging.getLogger(READ_LOGGER).handlers
    assert screen.getvalue().endswith("\r")  # the live line cleared
    (record,) = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert record["run_id"] == "2026-11-30-abc" and record["stage"] == "plan" and record["counts"] == {"input_files": 3}
    assert 0 <= record["duration_s"] < 5 and record["msg"].startswith("stage plan done in")


def test_the_batch_logs_json_stage_lines_with_their_own_durations(tmp_path):
    t0 = time.monotonic()
    r = run_cli("batch", "--config", WORLD / "config.yaml", "--run-date", RUN_DATE, "--output", tmp_path / "out", "--buckets", "4")
    wall_s = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith(f"invrecon batch {RUN_DATE}  run ") and "SUCCEEDED" in r.stdout
    records = [json.loads(line) for line in r.stderr.splitlines()]  # every stderr line is a JSON object
    assert not [x for x in records if x["logger"].startswith("great_expectations")]
    stages = {x["stage"]: x for x in records if "stage" in x}
    assert ["plan", "graph", "gate", "publish", "data_docs", "warehouse"] == [s for s in stages if "/" not in s]
    for x in stages.values():
        assert x["run_id"].startswith(f"{RUN_DATE}-") and isinstance(x["duration_s"], float) and isinstance(x["counts"], dict)
    assert stages["plan"]["counts"] == {"sources": 5, "input_files": 10, "input_bytes": stages["plan"]["counts"]["input_bytes"]}
    assert stages["graph"]["counts"]["files_read"] == 10 and stages["graph"]["counts"]["records_read"] == 636
    assert stages["gate"]["counts"]["records_quarantined"] == 18
    # Each stage's own time, not the time since the start: together they fit in the wall time.
    assert sum(x["duration_s"] for s, x in stages.items() if "/" not in s) < wall_s


def test_a_stream_replay_logs_its_stage_line_with_counts(tmp_path):
    """`invrecon stream` over files: a `replay` stage record with its own duration and counts."""
    events = f"file://{WORLD}/inputs/events/{RUN_DATE}/*.jsonl"
    r = run_cli("stream", "--config", WORLD / "config.yaml", "--events", events, "--output", tmp_path / "out", "--no-seed")
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(line) for line in r.stderr.splitlines()]  # every stderr line is a JSON object
    replay = [x for x in records if x.get("stage") == "replay"]
    assert len(replay) == 1 and isinstance(replay[0]["duration_s"], float) and replay[0]["run_id"]
    read = int(re.search(r"read (\d+) = movements", r.stdout)[1])
    assert replay[0]["counts"]["files_read"] == 1 and replay[0]["counts"]["events_read"] == read > 0


def test_on_a_terminal_the_batch_shows_a_live_line_and_clears_it_before_the_summary(tmp_path):
    pty = pytest.importorskip("pty")
    master, replica = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invrecon.pipelines.cli", "batch", "--config", str(WORLD / "config.yaml"), "--run-date", RUN_DATE,
         "--output", str(tmp_path / "out"), "--buckets", "4"],
        stdin=replica, stdout=subprocess.PIPE, stderr=replica, cwd=ROOT,
    )
    os.close(replica)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    stdout = proc.stdout.read().decode()
    assert proc.wait(timeout=600) == 0, terminal.decode(errors="replace")[-3000:]
    os.close(master)
    shown = terminal.decode(errors="replace")
    assert re.search(rf"invrecon batch {RUN_DATE} \| graph \| files read \d+/10 \| records [\d,]+ \| elapsed \d+:\d\d", shown)
    assert "files read 10/10 | records 636" in shown
    assert "INFO invrecon.batch: stage graph done in" in shown and not shown.lstrip().startswith("{")  # human lines, not JSON
    assert stdout.startswith(f"invrecon batch {RUN_DATE}  run ") and "\r" not in stdout and "records per source" in stdout
