"""`invrecon check --config CFG --run-date D`: is everything ready for the batch? Runs nothing.

Validates what `invrecon batch` validates before it runs, with the batch's own code
(`pipelines.batch_plan.load_checked_config` and `plan_job`): the config (schema, unknown keys, the
`FILL_IN`s of `invrecon init`), every column mapping, both crosswalks, the items master, the
alert thresholds and the expectation suites; then lists each source's files for the run date,
exactly as the batch would find them. Prints one line per source with its file count:

    erp_nightly             positions       1 file   /data/erp/2026-11-30/*.csv
    tpl_edi                 edi             2 files  /data/edi/2026-11-30/*
    ok: 5 sources, 10 input files for 2026-11-30 (the batch's run id: 2026-11-30-88339d7475e8)

Exit codes (DESIGN.md §3): 0 ready; 2 a usage or config error (one message naming the file and
the key path or line); 4 inputs missing: a source without files for the run date (each named
with its pattern; `--allow-missing` as for the batch). Nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from invrecon.pipelines.cli import HelpFormatter, fail

__all__ = ["main"]

PROG = "invrecon check"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Validate a config, its mappings and crosswalks, and find each source's files for a run date; runs nothing.",
        formatter_class=HelpFormatter,
        epilog="Exit codes: 0 ready, 2 usage or config error, 4 inputs missing for the run date.",
    )
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", required=True, metavar="YYYY-MM-DD", help="the run date whose input files to look for")
    parser.add_argument("--output", help="the output folder whose history the data-quality gate reads; default the config's `output`")
    parser.add_argument("--allow-missing", default="", help="comma-separated sources that may have no files (or 'all'), as for the batch")
    return parser


def _source_lines(job, cfg, run_date: dt.date) -> list[str]:
    lines = []
    for spec, files in job.sources:
        pattern = cfg.source(spec.name).path.replace("{run_date}", run_date.isoformat())
        count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
        lines.append(f"{spec.name:<24}{spec.kind:<14}{count:>9}  {pattern}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0, 2 or 4 (see the module docstring)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        run_date = dt.date.fromisoformat(args.run_date)
    except ValueError:
        return fail(PROG, f"--run-date {args.run_date!r} is not a date (YYYY-MM-DD)")
    # After the arguments are checked: `check --help` and a bad date answer without loading Beam.
    from invrecon.pipelines import batch_plan
    from invrecon.pipelines.config import ConfigError
    from invrecon.transforms.canonical import CrosswalkError
    from invrecon.transforms.quality import SuiteError

    try:
        cfg = batch_plan.load_checked_config(args.config)
    except (ConfigError, CrosswalkError) as e:
        return fail(PROG, f"config error: {e}")
    output = (args.output or cfg.output).rstrip("/")
    try:
        job, inputs = batch_plan.plan_job(cfg, run_date, output=output)
    except SuiteError as e:
        return fail(PROG, f"expectation suite error: {e}")
    except ValueError as e:
        return fail(PROG, e)
    print("\n".join(_source_lines(job, cfg, run_date)), flush=True)
    missing = batch_plan.missing_sources(job, args.allow_missing)
    if missing:
        for line in batch_plan.missing_messages(cfg, missing, run_date, prog=PROG):
            print(line, file=sys.stderr)
        return 4
    print(f"ok: {len(job.sources)} sources, {len(inputs)} input files for {run_date} (the batch's run id: {job.run_id})")
    return 0
