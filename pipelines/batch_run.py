"""The `invrecon batch` command: one run date, or a backfill of dates, and its exit codes.

    invrecon batch --config fixtures/world/config.yaml --run-date 2026-11-30
    invrecon batch --config CFG --from 2026-11-01 --to 2026-11-30   # a backfill, resumable

Each date is planned (`pipelines.batch_plan`), its graph built and run (`pipelines.batch.build`)
and finished (`pipelines.batch_finish`); the summary and messages are printed once the live
progress line is cleared. Other runners by Beam flags: `--runner DataflowRunner --project ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from invrecon.pipelines.batch import DEFAULT_BUCKETS, BatchJob, build
from invrecon.pipelines.batch_finish import finish_run, refresh_warehouse
from invrecon.pipelines.batch_plan import load_checked_config, missing_messages, missing_sources, plan_job, published_run
from invrecon.pipelines.beam_args import UsageError, check_beam_args
from invrecon.pipelines.cli import BEAM_EPILOG, HelpFormatter, fail
from invrecon.pipelines.config import Config, ConfigError
from invrecon.pipelines.progress import Progress
from invrecon.pipelines.publish import recover
from invrecon.pipelines.run_summary import RunResult, summary_text
from invrecon.pipelines.warehouse import DEFAULT_WAIT_S, default_warehouse
from invrecon.transforms.canonical import CrosswalkError
from invrecon.transforms.quality import SuiteError

__all__ = ["main"]

PROG = "invrecon batch"  # how its one-line errors start


def _runner(name: str | None):
    """The runner to use: the one named by --runner, else the in-process FnApiRunner."""
    if name:
        return name
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="invrecon batch", description="Run the nightly reconciliation for a run date.",
                                     formatter_class=HelpFormatter, epilog=BEAM_EPILOG)
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", help="YYYY-MM-DD: run this date (always runs, even if already published)")
    parser.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD",
                        help="backfill: the first run date (with --to; instead of --run-date); dates already published with the same inputs are skipped")
    parser.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD", help="backfill: the last run date (inclusive)")
    parser.add_argument("--force", action="store_true", help="backfill: also re-run dates already published with the same inputs")
    parser.add_argument("--output", help="override the config's output folder (a path or an fsspec URL: s3://, gs://, memory://)")
    parser.add_argument("--warehouse", help="the DuckDB warehouse file (local); default <output>/warehouse.duckdb for a local output, none otherwise")
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="hash buckets of the (sku, location) shuffle")
    parser.add_argument("--allow-missing", default="", help="comma-separated sources that may have no files (or 'all')")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 5 when an alert fired")
    parser.add_argument("--warehouse-wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help="how long to wait for a warehouse file another process holds read-write before failing (exit 1)")
    parser.add_argument("--quiet", action="store_true", help="no summary on stdout")
    args, rest = parser.parse_known_args(argv)
    return args, check_beam_args(rest, prog=parser.prog, own=parser)


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _display(url: str) -> str:
    """A local path as a path (what a terminal user can open), anything else as its URL."""
    return url.removeprefix("file://") if _is_local(url) else url


def _warehouse_path(args, output: str) -> str | None:
    return args.warehouse or default_warehouse(output)


@dataclasses.dataclass
class _Outcome:
    """What one run date came to: exit code, one line for a backfill, stderr lines, the summary."""

    code: int
    what: str
    errors: list[str] = dataclasses.field(default_factory=list)
    summary: str | None = None


def _run_date(cfg: Config, args: argparse.Namespace, beam_args: list[str], run_date: dt.date, output: str,
              *, skip_published: bool) -> tuple[int, str]:
    """Run one date (or skip it when published from the same inputs); the exit code and what was done.

    Its messages and summary are printed once the live progress line is cleared.
    """
    with Progress(label=f"invrecon batch {run_date}") as progress:
        out = _run_one(cfg, args, beam_args, run_date, output, skip_published=skip_published, progress=progress)
    for line in out.errors:
        print(line, file=sys.stderr)
    if out.summary is not None:
        print(out.summary)
    return out.code, out.what


def _run_one(cfg: Config, args: argparse.Namespace, beam_args: list[str], run_date: dt.date, output: str,
             *, skip_published: bool, progress: Progress) -> _Outcome:
    progress.begin("plan")
    recover(output)  # what a run killed while finishing left behind (pipelines.publish)
    started = dt.datetime.now(dt.UTC)
    warehouse_db = _warehouse_path(args, output)
    try:
        job, inputs = plan_job(cfg, run_date, output=output, buckets=args.buckets)
    except SuiteError as e:
        return _Outcome(2, f"failed (exit 2): expectation suite error: {e}", [f"invrecon batch: expectation suite error: {e}"])
    except ValueError as e:
        return _Outcome(2, f"failed (exit 2): {e}", [f"invrecon batch: {e}"])
    progress.run_id, progress.total_files = job.run_id, len(inputs)
    if skip_published and published_run(output, job.run_id, run_date):
        locked = refresh_warehouse(warehouse_db, output, wait_s=args.warehouse_wait, run_id=job.run_id, progress=progress)
        if locked:
            return _Outcome(1, f"failed (exit 1): warehouse locked; run {job.run_id} was already published", [f"invrecon batch: {locked}"])
        return _Outcome(0, f"skipped: already published as run {job.run_id}")
    missing = missing_sources(job, args.allow_missing)
    if missing:
        return _Outcome(4, f"failed (exit 4): inputs missing: {', '.join(missing)}", missing_messages(cfg, missing, run_date))
    progress.end(sources=len(job.sources), input_files=len(inputs), input_bytes=sum(f["size"] for f in inputs))
    progress.begin("graph")
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    p = beam.Pipeline(runner=_runner(runner), options=options)
    build(p, job)
    pipeline_result = p.run()
    pipeline_result.wait_until_finish()
    progress.end_graph(pipeline_result)
    result, failures = finish_run(job, cfg, inputs=inputs, started=started, runner=str(runner) if runner else "FnApiRunner",
                               warehouse_db=warehouse_db, progress=progress)
    locked = refresh_warehouse(warehouse_db, output, wait_s=args.warehouse_wait, run_id=job.run_id, progress=progress)
    return _outcome(job, result, failures, locked, args)


def _outcome(job: BatchJob, result: RunResult, failures: list[str], locked: str | None, args: argparse.Namespace) -> _Outcome:
    """The exit code, messages and summary of a run date whose graph ran."""
    output, run_date = job.output, job.run_date
    if failures:
        errors = [f"invrecon batch: data-quality gate failed: {'; '.join(failures)}",
                  f"invrecon batch: quarantine and dq_results for {run_date} are in {output}; the reconciliation was not published"]
        if result.data_docs:
            errors.append(f"invrecon batch: which expectation failed, and why: {_display(result.data_docs)}")
        if locked:
            errors.append(f"invrecon batch: {locked}")
        return _Outcome(3, f"failed (exit 3): data-quality gate failed: {'; '.join(failures)}", errors)
    if locked:
        return _Outcome(1, f"failed (exit 1): warehouse locked; run {job.run_id} is published", [f"invrecon batch: {locked}"])
    summary = None
    if not args.quiet:
        summary = summary_text(result)
        if _is_local(output):  # the report reads <output>/warehouse.duckdb on this machine
            summary += f"\n  .venv/bin/invrecon report --config {args.config} --run-date {run_date} --output {output.removeprefix('file://')}"
    if result.status == "failed":
        return _Outcome(1, f"failed (exit 1): run {job.run_id} violated conservation: {result.message}", summary=summary)
    if args.fail_on_alert and result.alerts:
        return _Outcome(5, f"failed (exit 5): run {job.run_id} is published; {result.alerts} alert(s) fired (--fail-on-alert)", summary=summary)
    return _Outcome(0, f"ran: run {job.run_id} {result.status}, {sum(result.classes.values())} discrepancies, {result.alerts} alert(s)",
                    summary=summary)


def _dates(args: argparse.Namespace) -> list[dt.date]:
    """The run dates the command line asks for, in order (raises UsageError)."""
    def day(flag: str, value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"invrecon batch: {flag} {value!r} is not a date (YYYY-MM-DD)") from None

    if args.run_date is not None:
        if args.from_date is not None or args.to_date is not None:
            raise UsageError("invrecon batch: give either --run-date or --from/--to, not both")
        return [day("--run-date", args.run_date)]
    if args.from_date is None or args.to_date is None:
        raise UsageError("invrecon batch: give --run-date YYYY-MM-DD, or --from YYYY-MM-DD --to YYYY-MM-DD for a backfill")
    first, last = day("--from", args.from_date), day("--to", args.to_date)
    if last < first:
        raise UsageError(f"invrecon batch: --to {last} is before --from {first}")
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3.

    A backfill (`--from D1 --to D2`) runs each date in order, skipping the dates already
    published from the same inputs, prints one line per date (`ran: ...`, `skipped: already
    published as run ...`, `failed (exit N): ...`) and stops at the first failure with that
    date's exit code; the same command resumes it.
    """
    try:
        args, beam_args = _parse_args(list(sys.argv[1:] if argv is None else argv))
        dates = _dates(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    if args.force and args.run_date is not None:
        return fail(PROG, "--force goes with --from/--to (--run-date always runs)")
    if args.warehouse_wait < 0:
        return fail(PROG, f"--warehouse-wait must be >= 0, got {args.warehouse_wait:g}")
    try:
        cfg = load_checked_config(args.config)
    except (ConfigError, CrosswalkError) as e:
        return fail(PROG, f"config error: {e}")
    output = (args.output or cfg.output).rstrip("/")
    if args.run_date is not None:
        return _run_date(cfg, args, beam_args, dates[0], output, skip_published=False)[0]
    ran = skipped = 0
    for k, day in enumerate(dates):
        code, what = _run_date(cfg, args, beam_args, day, output, skip_published=not args.force)
        print(f"{day}: {what}", flush=True)
        if code:
            left = len(dates) - k - 1
            print(f"invrecon batch: backfill {dates[0]}..{dates[-1]} stopped at {day} (exit {code}), {left} later date(s) not run; "
                  "re-run the same command to resume (published dates are skipped)", file=sys.stderr)
            return code
        ran, skipped = ran + what.startswith("ran"), skipped + what.startswith("skipped")
    print(f"backfill {dates[0]}..{dates[-1]}: {ran} ran, {skipped} skipped", flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
