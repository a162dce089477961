"""Unknown command-line flags are usage errors (exit 2), not Beam warnings (issue 12, §3)."""

from __future__ import annotations

import argparse

import pytest

from invrecon.pipelines import stock_stream
from invrecon.pipelines.beam_args import UsageError, beam_option_flags, check_beam_args
from tests.conftest import WORLD, run_batch

# invrecon batch's own flags (pipelines/batch_run.py parses them; the rest goes to Beam).
BATCH_FLAGS = ["--config", "--run-date", "--output", "--buckets", "--allow-missing", "--fail-on-alert", "--quiet"]
EVENTS = f"file://{WORLD}/inputs/events/2026-11-30/*.jsonl"


def test_beam_flags_come_from_beams_registered_options():
    flags = beam_option_flags()
    assert {"--runner", "--direct_num_workers", "--direct_running_mode", "--project", "--temp_location", "--setup_file", "--streaming"} <= flags
    assert "--fail-on-alert" not in flags


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        ["--runner=DataflowRunner", "--project", "P", "--region", "us-central1", "--temp_location", "gs://bucket/tmp"],
        ["--experiments", "a", "--experiments=b", "--save_main_session", "--no_use_public_ips"],
    ],
)
def test_real_beam_options_pass_unchanged(argv):
    assert check_beam_args(list(argv), prog="invrecon batch", own=BATCH_FLAGS) == argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fail-on-alerts"], "unknown option --fail-on-alerts (neither an invrecon option nor a Beam pipeline option); did you mean --fail-on-alert?"),
        (["--fail-on-alerts=yes"], "unknown option --fail-on-alerts (neither"),
        (["--bucket", "8"], "did you mean --buckets?"),
        (["--direct-num-workers", "2"], "unknown option --direct-num-workers (neither an invrecon option nor a Beam pipeline option); did you mean --direct_num_workers?"),
        (["--runner", "X", "--runne", "Y"], "did you mean --runner?"),
        (["--completely_made_up"], "unknown option --completely_made_up (neither an invrecon option nor a Beam pipeline option)"),
        (["-n", "2"], "unknown option -n"),
        (["2026-11-30"], "unexpected argument '2026-11-30'"),
        (["--direct_num_workers", "two"], "argument --direct_num_workers: invalid int value: 'two'"),
        (["--direct_running_mode", "fast"], "argument --direct_running_mode: invalid choice: 'fast'"),
    ],
)
def test_anything_else_is_a_usage_error_naming_the_flag(argv, message):
    with pytest.raises(UsageError) as e:
        check_beam_args(argv, prog="invrecon batch", own=BATCH_FLAGS)
    assert str(e.value).startswith("invrecon batch: ") and message in str(e.value)
    assert e.value.exit_code == 2


def test_own_flags_may_be_given_as_the_parser():
    parser = argparse.ArgumentParser(prog="invrecon x")
    parser.add_argument("--fail-on-alert", action="store_true")
    with pytest.raises(UsageError, match=r"did you mean --fail-on-alert\?"):
        check_beam_args(["--fail-on-alerts"], prog="invrecon x", own=parser)


def test_stream_refuses_an_unknown_flag_before_any_work(tmp_path, capsys):
    argv = ["--config", str(WORLD / "config.yaml"), "--events", EVENTS, "--output", str(tmp_path / "o"), "--quiet", "--fail-on-alerts"]
    assert stock_stream.main(argv) == 2
    err = capsys.readouterr().err
    assert "invrecon stream: unknown option --fail-on-alerts" in err and "did you mean --fail-on-alert?" in err
    assert not (tmp_path / "o").exists()


def test_report_refuses_an_unknown_flag(committed_run, capsys):
    """A guard: `invrecon report` passes nothing to Beam, so its own strict parser refuses it."""
    from invrecon.pipelines import report

    assert report.main(["--config", str(WORLD / "config.yaml"), "--run-date", "2026-11-30", "--output", str(committed_run), "--formats", "csv"]) == 2
    assert "--formats" in capsys.readouterr().err


def test_batch_refuses_an_unknown_flag(tmp_path):
    assert run_batch(WORLD / "config.yaml", output=tmp_path / "out", extra=["--fail-on-alerts"]) == 2
