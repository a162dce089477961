"""Backfills (issue 12 §5): `invrecon batch --from D1 --to D2` runs each date in order, skips what
is already published from the same inputs, stops at the first failure, and resumes."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from invrecon.pipelines import batch_run, publish
from invrecon.pipelines.quality_gate import load_history
from tests.conftest import make_world

D1, D2, D3 = (dt.date(2026, 11, d) for d in (28, 29, 30))


def _backfill(world, out, *extra: str) -> list[str]:
    return ["--config", str(world / "config.yaml"), "--from", str(D1), "--to", str(D3), "--output", str(out),
            "--quiet", "--buckets", "4", *extra]


def _runs(out) -> dict[dt.date, tuple[str, str]]:
    """run date -> (run_id, status) of the committed `runs` table."""
    rows = load_history(str(out), dt.date(1970, 1, 1)).runs
    return {d: (r, s) for d, r, s in rows.select("run_date", "run_id", "status").iter_rows()}


def _lines(stdout: str) -> dict[str, str]:
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in stdout.splitlines() if ": " in line and line[:4].isdigit()}


def test_backfill_stops_at_the_first_failure_resumes_and_skips_what_is_published(tmp_path, capsys):
    world = make_world(tmp_path / "world", skus=16, locations=4, days=3, seed=5, end_date=D3)
    out = tmp_path / "out"
    erp = world / "inputs" / "erp"
    shutil.move(erp / str(D2), tmp_path / "erp-d2")  # D2's ERP extract has not arrived

    assert batch_run.main(_backfill(world, out)) == 4
    io = capsys.readouterr()
    said = _lines(io.out)
    assert said[str(D1)].startswith("ran: run 2026-11-28-") and "succeeded" in said[str(D1)]
    assert said[str(D2)] == "failed (exit 4): inputs missing: erp_nightly"
    assert str(D3) not in said
    assert f"stopped at {D2} (exit 4)" in io.err and "re-run the same command to resume" in io.err
    assert set(_runs(out)) == {D1}
    first_d1 = _runs(out)[D1][0]

    shutil.move(tmp_path / "erp-d2", erp / str(D2))  # it arrived: the same command resumes
    assert batch_run.main(_backfill(world, out)) == 0
    said = _lines(capsys.readouterr().out)
    assert said[str(D1)] == f"skipped: already published as run {first_d1}"
    assert said[str(D2)].startswith("ran: ") and said[str(D3)].startswith("ran: ")
    runs = _runs(out)
    assert [runs[d][1] for d in (D1, D2, D3)] == ["succeeded"] * 3
    assert all(f"run {runs[d][0]} succeeded" in said[str(d)] for d in (D2, D3))
    seqs = publish.read_commits(str(out)).column("seq").to_pylist()

    assert batch_run.main(_backfill(world, out)) == 0  # nothing to do: no graph, no commit
    said = _lines(capsys.readouterr().out)
    assert all(said[str(d)] == f"skipped: already published as run {runs[d][0]}" for d in (D1, D2, D3))
    assert publish.read_commits(str(out)).column("seq").to_pylist() == seqs

    # a corrected extract for D2 only: D2 runs again (a new run id), D1 and D3 are skipped
    extract = next((erp / str(D2)).glob("*.csv"))
    extract.write_text(extract.read_text().replace("\n", "\r\n"))
    assert batch_run.main(_backfill(world, out)) == 0
    said = _lines(capsys.readouterr().out)
    assert said[str(D1)].startswith("skipped") and said[str(D3)].startswith("skipped")
    assert said[str(D2)].startswith("ran: ") and runs[D2][0] not in said[str(D2)]
    assert _runs(out)[D2][0] != runs[D2][0]


@pytest.mark.parametrize("argv, message", [
    (["--run-date", "2026-11-30", "--from", "2026-11-28", "--to", "2026-11-30"], "either --run-date or --from/--to"),
    (["--from", "2026-11-28"], "--from YYYY-MM-DD --to YYYY-MM-DD"),
    (["--from", "2026-11-30", "--to", "2026-11-28"], "--to 2026-11-28 is before --from 2026-11-30"),
    (["--from", "2026-11-31", "--to", "2026-12-01"], "--from '2026-11-31' is not a date"),
    ([], "give --run-date"),
    (["--run-date", "2026-11-30", "--force"], "--force goes with --from/--to"),
])
def test_backfill_usage_errors_are_exit_2(world_copy, tmp_path, capsys, argv, message):
    assert batch_run.main(["--config", str(world_copy / "config.yaml"), "--output", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err
