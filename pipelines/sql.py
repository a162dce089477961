"""`invrecon sql`: query the warehouse read-only from the shell, no DuckDB CLI needed.

    invrecon sql --warehouse out/warehouse.duckdb "SELECT * FROM discrepancy_summary"
    invrecon sql --config fixtures/world/config.yaml --csv "SELECT * FROM discrepancies" > d.csv
    invrecon sql --warehouse local.duckdb --output s3://bucket/out "SELECT * FROM discrepancy_summary"

The connection is read-only, so a query never blocks the nightly load (which swaps in a new file).
`--output` first creates (or refreshes) the warehouse file's views over that output folder, as
the batch does: how an analyst gets a local warehouse over an output in object storage. Its
views read the Parquet there through the output's fsspec backend (s3fs, gcsfs).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import duckdb

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from invrecon.pipelines.cli import HelpFormatter

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
    path = args.warehouse
    if args.config:
        from invrecon.pipelines.config import ConfigError, load_config

        try:
            path = f"{load_config(args.config).output}/warehouse.duckdb"
        except ConfigError as e:
            print(f"invrecon sql: config error: {e}", file=sys.stderr)
            return 2
    if args.output:
        if not args.warehouse:
            print("invrecon sql: --output needs --warehouse (the local file to hold the views)", file=sys.stderr)
            return 2
        from invrecon.pipelines.publish import latest_commits
        from invrecon.pipelines.warehouse import ensure_warehouse

        output = args.output.rstrip("/")
        try:
            if not latest_commits(output).num_rows:
                print(f"invrecon sql: {output}: nothing published there (no _commits/)", file=sys.stderr)
                return 2
            ensure_warehouse(path, output)
        except (OSError, ImportError, ValueError, duckdb.Error) as e:  # ImportError / ValueError: no fsspec backend for it
            print(f"invrecon sql: {output}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    if not os.path.exists(path):
        print(f"invrecon sql: no warehouse at {path} (run `invrecon batch` first, or pass --output URL)", file=sys.stderr)
        return 2
    from invrecon.pipelines.warehouse import connect

    con = connect(path)  # read-only; reads an output in object storage through its fsspec backend
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
        print(f"invrecon sql: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0
