"""The bench's own tools: measuring a child process, reading the batch's stage lines."""

from __future__ import annotations

import json
import sys

from bench._common import log_marks, run_measured, stage_lines, stage_totals


def test_stage_lines_take_only_json_lines_with_stage_and_duration(tmp_path):
    err = tmp_path / "batch.err"
    err.write_text("\n".join([
        json.dumps({"level": "info", "msg": "run 2026-11-30-abc: 5 input files"}),
        json.dumps({"level": "info", "msg": "planned", "stage": "plan", "duration_s": 0.25}),
        "a traceback line, not JSON",
        json.dumps({"stage": "graph", "duration_s": "12.5"}),
        json.dumps({"stage": "publish"}),  # no duration: not a stage line
        json.dumps({"stage": "graph", "duration_s": 1.5}),
        json.dumps({"level": "info", "msg": "reconciled in 24.6 s"}),
        json.dumps({"level": "info", "msg": "published and loaded in 26.5 s"}),
    ]) + "\n")
    lines = stage_lines(err)
    assert lines == [{"stage": "plan", "duration_s": 0.25}, {"stage": "graph", "duration_s": 12.5}, {"stage": "graph", "duration_s": 1.5}]
    assert stage_totals(lines) == {"plan": 0.25, "graph": 14.0}
    assert log_marks(err) == {"reconcile": 24.6, "publish_load": 1.9}


def test_run_measured_reports_the_childs_own_exit_code_and_memory(tmp_path):
    m = run_measured([sys.executable, "-c", "import sys; b = bytearray(64 << 20); print('x'); sys.exit(3)"], log_dir=tmp_path, name="child")
    assert m.returncode == 3
    assert m.peak_rss_mb >= 64
    assert m.stdout.read_text() == "x\n"


def test_run_measured_stops_a_child_over_the_memory_limit(tmp_path):
    code = "import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    m = run_measured([sys.executable, "-c", code], log_dir=tmp_path, name="hog", max_rss_mb=150)
    assert m.returncode == -9
    assert m.killed_over_mb and m.killed_over_mb > 150
