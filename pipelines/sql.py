"""`invrecon sql`: query the warehouse read-only from the shell, no DuckDB CLI needed.

    invrecon sql --warehouse out/warehouse.duckdb "SELECT * FROM discrepancy_summary"
    invrecon sql --config fixtures/world/config.yaml --csv "SELECT * FROM discrepancies" > d.csv
    invrecon sql --warehouse local.duckdb --output s3://bucket/out "SELECT * FROM discrepancy_summary"

The connection is read-only, so a query never blocks the nightly load (which swaps in a new file).
`--config` opens the warehouse the batch keeps for that config's output folder
(`<output>/warehouse.duckdb`, `pipelines.warehouse.default_warehouse`). `--output` first creates
(or refreshes) the warehouse file's views over that output folder, as the batch does: how an
analyst gets a local warehouse over an output in object storage. Its views read the Parquet there
through the output's fsspec backend (s3fs, gcsfs). Every error is one line on stderr, exit 2.
What the views and columns mean: docs/warehouse.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import duckdb

from invrecon.pipelines.cli import HelpFormatter, fail

__all__ = ["main"]

PROG = "invrecon sql"  # how its one-line errors start


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _config_warehouse(config: str) -> str | None:
    """The warehouse the batch keeps for `config`'s output; None (and the one-line error) if none."""
    # Here, not at the top: a query of an existing warehouse (`--warehouse`) loads neither the
    # config schema nor the warehouse builder, so `invrecon sql` answers at DuckDB's speed.
    from invrecon.pipelines.config import ConfigError, load_config
    from invrecon.pipelines.warehouse import default_warehouse

    try:
        output = load_config(config).output
    except ConfigError as e:
        print(f"invrecon sql: config error: {e}", file=sys.stderr)
        return None
    path = default_warehouse(output)
    if path is None:
        print(f"invrecon sql: the output of {config} is {output}, not a local folder: the batch keeps no warehouse there; "
              f"make a local one over it: invrecon sql --warehouse LOCAL.duckdb --output {output} QUERY", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="invrecon sql", description="Run one read-only SQL query on the warehouse.",
                                     formatter_class=HelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--warehouse", help="path of warehouse.duckdb")
    where.add_argument("--config", help="config YAML: its output folder's warehouse.duckdb")
    parser.add_argument("--output", help="with --warehouse: create or refresh its views over this output folder (a path or an fsspec URL) first")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--max-rows", type=int, default=40, help="rows shown in table mode (CSV prints all)")
    parser.add_argument("query", help="one SQL statement (read-only)")
    args = parser.parse_args(argv)
    path = args.warehouse or _config_warehouse(args.config)
    if path is None:
        return 2
    if args.output:
        if not args.warehouse:
            return fail(PROG, "--output needs --warehouse (the local file to hold the views)")
        from invrecon.pipelines.publish import latest_commits  # only to build views over --output
        from invrecon.pipelines.warehouse import ensure_warehouse

        output = args.output.rstrip("/")
        try:
            if not latest_commits(output).num_rows:
                return fail(PROG, f"{output}: nothing published there (no _commits/)")
            ensure_warehouse(path, output)
        except (OSError, ImportError, ValueError, duckdb.Error) as e:  # ImportError / ValueError: no fsspec backend for it
            return fail(PROG, f"{output}: {type(e).__name__}: {e}")
    if not os.path.exists(path):
        hint = f"run `invrecon batch --config {args.config} --run-date YYYY-MM-DD` first" if args.config else "run `invrecon batch` first, or pass --output URL"
        return fail(PROG, f"no warehouse at {path} ({hint})")
    from invrecon.pipelines.warehouse import connect

    try:
        con = connect(path)  # read-only; reads an output in object storage through its fsspec backend
    except duckdb.Error as e:  # held read-write by another process, or not a DuckDB file
        return fail(PROG, f"cannot open {path}: {_one_line(e)}")
    try:
        rel = con.sql(args.query)
        if rel is None:
            return 0
        if args.csv:
            from invrecon.pipelines.report import neutralize

            # Text from source files may open a spreadsheet formula (=, +, -, @): keep it text.
            writer = csv.writer(sys.stdout)
            writer.writerow(rel.columns)
            for row in con.execute(args.query).fetchall():
                writer.writerow([neutralize(v) if isinstance(v, str) else v for v in row])
        else:
            rel.show(max_rows=args.max_rows, max_width=200)
    except duckdb.Error as e:
        return fail(PROG, f"{type(e).__name__}: {e}")
    finally:
        con.close()
    return 0
