"""The `invrecon` command line: one subcommand per job (DESIGN.md §3).

Each subcommand lives in its own module with a `main(argv) -> int`; this module only dispatches,
so `invrecon parse-edi` does not pay for importing Beam and Great Expectations.

Exit codes: 0 success, 1 unexpected, 2 usage / config, 3 data-quality gate, 4 inputs missing,
5 alert fired with --fail-on-alert.
"""

from __future__ import annotations

import importlib
import logging
import sys

__all__ = ["main"]

# subcommand -> (module, one-line help)
COMMANDS = {
    "batch": ("pipelines.batch", "run the nightly reconciliation for a run date"),
    "stream": ("pipelines.stock_stream", "run the streaming stock-event pipeline"),
    "report": ("pipelines.report", "write the finance discrepancy report for a run date"),
    "parse-edi": ("pipelines.parse_edi", "print the records and errors found in EDI files"),
    "fixtures": ("fixtures.generator", "generate a synthetic retail world with ground truth"),
}

USAGE = "usage: invrecon {" + ",".join(COMMANDS) + "} [options]\n\n" + "\n".join(
    f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()
)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"invrecon: unknown command {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print("invrecon: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
