"""`invrecon report --config CFG --run-date D [--format html,xlsx,csv] [--output OUT] [--report-dir DIR]`."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pathlib
import sys

import duckdb
import polars as pl
import pyarrow as pa

from invrecon.pipelines import alerts, data_docs
from invrecon.pipelines.cli import HelpFormatter, fail
from invrecon.pipelines.config import ConfigError, load_config
from invrecon.pipelines.report.common import FORMATS
from invrecon.pipelines.report.csvfile import CSV_ENCODING, write_csv
from invrecon.pipelines.report.data import NoRunError, ReportData, gather, read_items, relativize
from invrecon.pipelines.report.page import render_html
from invrecon.pipelines.report.workbook import write_xlsx
from invrecon.schemas import ALERTS

__all__ = ["config_folder", "main"]

PROG = "invrecon report"  # how its one-line errors start


def _replace(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="invrecon report", description="Write the finance discrepancy report for a run date.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--run-date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--format", default=",".join(FORMATS), help="comma-separated, any of html,xlsx,csv")
    parser.add_argument("--output", help="the batch output folder holding warehouse.duckdb; default the config's `output`")
    parser.add_argument("--report-dir", help="where to write; default <output>/reports/<run date>")
    return parser.parse_args(argv)


def config_folder(config: str) -> str:
    """The folder of the config file, the base of the report's lineage paths (absolute when local).

    Example:
      >>> config_folder("s3://bucket/world/config.yaml")
      's3://bucket/world'
    """
    if "://" in config and not config.startswith("file://"):
        return config.rsplit("/", 1)[0]
    return str(pathlib.Path(config.removeprefix("file://")).resolve().parent)


def _write_all(data: ReportData, folder: str, formats: list[str]) -> list[str]:
    """Write the requested renderings and alerts.jsonl into `folder`; returns their paths."""
    written = []
    run_date = data.run_date
    if "html" in formats:
        path = f"{folder}/discrepancy_report_{run_date}.html"
        html = render_html(data)
        _replace(path, lambda p: pathlib.Path(p).write_text(html, encoding="utf-8"))
        written.append(path)
    if "xlsx" in formats:
        path = f"{folder}/discrepancy_report_{run_date}.xlsx"
        _replace(path, lambda p: write_xlsx(data, p))
        written.append(path)
    if "csv" in formats:
        path = f"{folder}/discrepancies_{run_date}.csv"

        def _csv(p: str) -> None:
            with open(p, "w", encoding=CSV_ENCODING, newline="") as f:
                write_csv(data, f)

        _replace(path, _csv)
        written.append(path)
    path = f"{folder}/alerts.jsonl"
    alerts.write_jsonl(pa.Table.from_pylist(data.alerts, schema=ALERTS), path)
    written.append(path)
    return written


def _options(argv: list[str]) -> tuple[argparse.Namespace, dt.date, list[str]] | int:
    """The parsed arguments, run date and formats, or the exit code of a usage error."""
    try:
        args = _parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    try:
        run_date = dt.date.fromisoformat(args.run_date)
    except ValueError:
        return fail(PROG, f"--run-date {args.run_date!r} is not a date (YYYY-MM-DD)")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        return fail(PROG, f"--format {args.format!r}: expected a comma-separated subset of {','.join(FORMATS)}")
    return args, run_date, formats


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3 (4: no run of that date)."""
    opts = _options(list(sys.argv[1:] if argv is None else argv))
    if isinstance(opts, int):
        return opts
    args, run_date, formats = opts
    try:
        cfg = load_config(args.config)  # the alert thresholds too (schemas.config.Alerts)
    except ConfigError as e:
        return fail(PROG, f"config error: {e}")
    try:
        items = read_items(cfg.items)
    except (OSError, pl.exceptions.PolarsError) as e:
        return fail(PROG, f"items master {cfg.items}: {e}")
    output = (args.output or cfg.output).rstrip("/")
    db_path = f"{output}/warehouse.duckdb"
    if not os.path.exists(db_path):
        return fail(PROG, f"{db_path}: no warehouse; run `invrecon batch --run-date {run_date}` first", 4)
    con = duckdb.connect(db_path, read_only=True)
    try:
        data = gather(con, run_date, items=items, timezone=cfg.timezone)
    except NoRunError:
        return fail(PROG, f"{db_path}: no run for {run_date}; run `invrecon batch --run-date {run_date}` first", 4)
    finally:
        con.close()
    relativize(data, config_folder(args.config))
    folder = (args.report_dir or alerts.report_dir(output, run_date)).rstrip("/")
    os.makedirs(folder, exist_ok=True)
    data.data_docs = data_docs.link_from(folder, output=output, run_date=run_date)
    for p in _write_all(data, folder, formats):
        print(p)
    return 0
