"""The `invrecon` command line: one subcommand per job (DESIGN.md §3).

Each subcommand lives in its own module with a `main(argv) -> int`; this module only dispatches,
so `invrecon parse-edi` does not pay for importing Beam and Great Expectations.

Exit codes: 0 success, 1 unexpected, 2 usage / config, 3 data-quality gate, 4 inputs missing,
5 alert fired with --fail-on-alert.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

__all__ = ["main"]

# subcommand -> (module, one-line help)
COMMANDS = {
    "batch": ("invrecon.pipelines.batch", "run the nightly reconciliation for a run date"),
    "stream": ("invrecon.pipelines.stock_stream", "run the streaming stock-event pipeline"),
    "report": ("invrecon.pipelines.report", "write the finance discrepancy report for a run date"),
    "parse-edi": ("invrecon.pipelines.parse_edi", "print the records and errors found in EDI files"),
    "fixtures": ("invrecon.fixtures.generator", "generate a synthetic retail world with ground truth"),
    "sql": ("invrecon.pipelines.sql", "run a read-only SQL query on the warehouse"),
    "warehouse": ("invrecon.pipelines.warehouse", "create or refresh the warehouse views of an output folder"),
}

USAGE = "usage: invrecon {" + ",".join(COMMANDS) + "} [options]\n\n" + "\n".join(
    f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()
)


# Structured fields a log call may carry (`extra=`), copied into the JSON line as they are.
_FIELDS = ("run_id", "stage", "duration_s", "input_files", "counts")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for schedulers and log shippers (stderr is not a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _DropNoise(logging.Filter):
    # Beam's GCP IO logs this on every import when the optional BigQuery client is absent; it
    # is not about anything invrecon does.
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def configure_logging() -> None:
    """Human lines on a terminal, JSON lines otherwise; Beam's own chatter only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(_JsonFormatter())
    handler.addFilter(_DropNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("apache_beam", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    configure_logging()
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print("invrecon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`invrecon sql ... | head`): what it wanted was written.
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail on the closed pipe.

    Python's documented remedy for SIGPIPE (see the `signal` module): without it, the flush at
    exit prints "Exception ignored ... BrokenPipeError" after the command has finished.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured, closed): nothing will be flushed
        pass


if __name__ == "__main__":
    sys.exit(main())
