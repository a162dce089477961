"""`invrecon parse-edi FILE... [--config CFG] [--ack-dir DIR]`: print what EDI files contain.

Reads each X12 / EDIFACT file (or every file under a directory, sorted) through the same parser
the batch pipeline uses and prints one JSON line per extracted record or problem
(DESIGN.md §3). With `--ack-dir`, also writes the 997 acknowledgements of each X12 file there
(`<file stem>.<n>.997`). With `--config`, the id-qualifier overrides of the config's EDI
sources (`sources: [{kind: edi, qualifiers: {VN: sku}}]`) decide which id becomes `item_id`.

Exit codes: 0 when every path was read (whatever errors the data holds, they are output);
2 when a path is missing or unreadable (named on stderr; the other files are still printed) or
the options / config are wrong; 1 for anything unexpected. Never a traceback.

Run locally:
    invrecon parse-edi ../shared/edi-samples/856/*.edi | jq -c 'select(.kind=="error")'
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Iterator
from typing import TextIO

from invrecon.pipelines.cli import HelpFormatter
from invrecon.transforms.edi import AckCollector, parse_edi_stream

__all__ = ["main"]

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """Bad options or config: exit 2 with this message."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="invrecon parse-edi", description=__doc__.splitlines()[0],
                                exit_on_error=False, formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="EDI files or directories")
    p.add_argument("--config", help="invrecon YAML config (for EDI id-qualifier overrides)")
    p.add_argument("--ack-dir", help="write 997 acknowledgements of X12 files into this folder")
    return p


def _qualifiers(config: str | None) -> dict[str, str] | None:
    """Qualifier overrides from the first `kind: edi` source that has `qualifiers`.

    The config is read and checked as the batch reads it (`pipelines.config.read_yaml`, the
    `schemas.config.EdiQualifiersDoc` model), but only the keys this command uses.
    """
    if not config:
        return None
    # Only with --config: the config schema (pydantic) is not worth loading for a plain parse.
    from invrecon.pipelines.config import ConfigError, read_yaml, validate
    from invrecon.schemas.config import EdiQualifiersDoc

    try:
        doc, _ = read_yaml(config, "config")
        return validate(EdiQualifiersDoc, {} if doc is None else doc, config).first_qualifiers()
    except ConfigError as exc:
        raise _UsageError(f"config error: {exc}") from None


def _expand(paths: list[str]) -> Iterator[tuple[str, pathlib.Path | None]]:
    """(name, path) per input file; path None when the name does not exist."""
    for name in paths:
        p = pathlib.Path(name)
        if p.is_dir():
            for child in sorted(c for c in p.rglob("*") if c.is_file()):
                yield str(child), child
        elif p.exists():
            yield name, p
        else:
            yield name, None


def _write_acks(path: pathlib.Path, ack_dir: pathlib.Path, texts: list[str]) -> None:
    for n, text in enumerate(texts, 1):
        (ack_dir / f"{path.stem}.{n}.997").write_text(text, encoding="utf-8")


def run(paths: list[str], *, qualifiers: dict[str, str] | None, ack_dir: str | None,
        out: TextIO, err: TextIO) -> int:
    """Parse every path, print JSON Lines to `out`; return the exit code."""
    code = EXIT_OK
    acks = pathlib.Path(ack_dir) if ack_dir else None
    if acks is not None:
        try:
            acks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _UsageError(f"cannot create --ack-dir {ack_dir}: {exc.strerror or exc}") from None
    dumps = json.dumps
    for name, path in _expand(paths):
        if path is None:
            print(f"invrecon parse-edi: {name}: no such file or directory", file=err)
            code = EXIT_USAGE
            continue
        try:
            collector = AckCollector() if acks is not None else None  # filled by the same pass
            with open(path, "rb") as fh:
                for rec in parse_edi_stream(fh, file=name, qualifiers=qualifiers, acks=collector):
                    out.write(dumps(rec, ensure_ascii=False))
                    out.write("\n")
            if acks is not None:
                _write_acks(path, acks, collector.texts)
        except BrokenPipeError:
            raise
        except OSError as exc:
            print(f"invrecon parse-edi: {name}: cannot read: {exc.strerror or exc}", file=err)
            code = EXIT_USAGE
    return code


def main(argv: list[str]) -> int:
    """Entry point for `invrecon parse-edi`; returns the exit code (see module docstring)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or argparse's own usage error (2)
        return int(exc.code or 0)
    except argparse.ArgumentError as exc:
        print(f"invrecon parse-edi: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args.files, qualifiers=_qualifiers(args.config), ack_dir=args.ack_dir,
                   out=sys.stdout, err=sys.stderr)
    except _UsageError as exc:
        print(f"invrecon parse-edi: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `| head`: the reader went away, which is not our failure
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI promises no traceback
        print(f"invrecon parse-edi: unexpected error: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
