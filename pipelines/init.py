"""`invrecon init DIR`: a commented starter config, column mappings and crosswalk templates.

Writes into DIR (a path or an fsspec URL; created when missing):

    config.yaml              every key explained; FILL_IN where only you know the value
    mappings/erp.yaml        the column mapping of the ERP positions feed (FILL_IN column names)
    mappings/store.yaml      ... of a store-count feed, for the commented-out example source
    mappings/availability.yaml  ... of a sales channel's availability feed, likewise
    crosswalk/sku.csv        the item crosswalk: header and example rows to replace
    crosswalk/location.csv   the location crosswalk: header and example rows to replace
    master/items.csv         the items master: header and an example row to replace

Once every FILL_IN is replaced and the crosswalks and items hold your data, `invrecon check`
passes and `invrecon batch` runs it. A config or mapping that still holds a FILL_IN is refused on
one line naming each key left (exit 2). Existing files are never overwritten without `--force`:
init refuses (exit 2, one line) and writes nothing.

    invrecon init my-recon
    invrecon check --config my-recon/config.yaml --run-date 2026-11-30
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys

import fsspec

from invrecon.pipelines.cli import HelpFormatter, fail

__all__ = ["TEMPLATES", "main", "write_starter"]

PROG = "invrecon init"  # how its one-line errors start

# The starter files, relative to DIR (and to pipelines/templates/init/ in the package).
TEMPLATES = (
    "config.yaml",
    "mappings/erp.yaml",
    "mappings/store.yaml",
    "mappings/availability.yaml",
    "crosswalk/sku.csv",
    "crosswalk/location.csv",
    "master/items.csv",
)


def _template(rel: str) -> bytes:
    return importlib.resources.files("invrecon.pipelines").joinpath("templates", "init", *rel.split("/")).read_bytes()


def write_starter(folder: str, *, force: bool = False) -> list[str]:
    """Write the starter files into `folder`; return their URLs.

    Raises:
      FileExistsError: some of them exist and `force` is not set (nothing is written); the
        message names the first and how many more.
    """
    fs, root = fsspec.core.url_to_fs(folder.rstrip("/") or "/")
    targets = {rel: f"{root}/{rel}" for rel in TEMPLATES}
    existing = [path for path in targets.values() if fs.exists(path)]
    if existing and not force:
        more = f" (and {len(existing) - 1} more of the starter files)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]} already exists{more}; use --force to overwrite")
    written = []
    for rel, path in targets.items():
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, _template(rel))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 written, 2 a file exists (without --force) or DIR cannot be written."""
    parser = argparse.ArgumentParser(
        prog="invrecon init", description="Write a commented starter config, column mappings and crosswalk templates into DIR.",
        formatter_class=HelpFormatter,
        epilog="Then replace every FILL_IN, fill in the crosswalks and the items master, and run "
               "`invrecon check --config DIR/config.yaml --run-date YYYY-MM-DD`.",
    )
    parser.add_argument("dir", metavar="DIR", help="the folder to write into (created when missing; a path or an fsspec URL)")
    parser.add_argument("--force", action="store_true", help="overwrite starter files that already exist there")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        written = write_starter(args.dir, force=args.force)
    except FileExistsError as e:
        return fail(PROG, e)
    except OSError as e:
        return fail(PROG, f"cannot write into {args.dir}: {e}")
    config = f"{args.dir.rstrip('/')}/config.yaml"
    print(f"wrote {len(written)} starter files into {args.dir}: {', '.join(TEMPLATES)}")
    print(f"next: replace every FILL_IN in {config} and in the mappings it names, put your items and ids in the crosswalks "
          "and master/items.csv, then:")
    print(f"  invrecon check --config {config} --run-date YYYY-MM-DD")
    print(f"  invrecon batch --config {config} --run-date YYYY-MM-DD")
    return 0
