"""The `invrecon` command line: one subcommand per job (DESIGN.md §3).

Each subcommand lives in its own module with a `main(argv) -> int`; this module only dispatches,
so `invrecon parse-edi` does not pay for importing Beam and Great Expectations.

Exit codes: 0 success, 1 unexpected, 2 usage / config, 3 data-quality gate, 4 inputs missing,
5 alert fired with --fail-on-alert.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys

__all__ = ["BEAM_EPILOG", "COMMANDS", "HelpFormatter", "fail", "main", "version"]

# subcommand -> (module, one-line help)
COMMANDS = {
    "init": ("invrecon.pipelines.init", "write a commented starter config, mappings and crosswalk templates"),
    "check": ("invrecon.pipelines.check", "validate a config and find each source's files for a run date, running nothing"),
    "batch": ("invrecon.pipelines.batch_run", "run the nightly reconciliation for a run date"),
    "stream": ("invrecon.pipelines.stock_stream", "run the streaming stock-event pipeline"),
    "report": ("invrecon.pipelines.report", "write the finance discrepancy report for a run date"),
    "parse-edi": ("invrecon.pipelines.parse_edi", "print the records and errors found in EDI files"),
    "fixtures": ("invrecon.fixtures.generator", "generate a synthetic retail world with ground truth"),
    "sql": ("invrecon.pipelines.sql", "run a read-only SQL query on the warehouse"),
    "warehouse": ("invrecon.pipelines.warehouse", "create or refresh the warehouse views of an output folder"),
}

USAGE = (
    "usage: invrecon {" + ",".join(COMMANDS) + "} [options]\n       invrecon --version\n\n"
    + "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
    + "\n\n`invrecon COMMAND --help` lists a command's options and their defaults; batch and stream pass Beam\n"
    "pipeline options through to Beam. Exit codes: 0 success, 1 unexpected, 2 usage / config, 3 data-quality\n"
    "gate, 4 inputs missing, 5 alert fired with --fail-on-alert (docs/cli.md)."
)


# What the help of the Beam jobs says about the flags they do not define themselves.
BEAM_EPILOG = (
    "Beam pipeline options pass through to Beam unchanged, after the invrecon options: --runner DataflowRunner "
    "--project P --region R --temp_location gs://B/tmp, --direct_num_workers 2 --direct_running_mode multi_processing, ... "
    "A flag that is neither an invrecon option nor a Beam pipeline option is refused (exit 2), naming the closest valid one."
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, when it has one worth showing (not None, False or "")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default == "" or default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


def fail(prog: str, message: object, code: int = 2) -> int:
    """Print the one-line error `<prog>: <message>` on stderr and return the exit code `code`.

    How every command ends when it cannot go on: `return fail("invrecon sql", f"cannot open {path}")`
    (2: usage or config, the default; 1 unexpected or locked; 4 inputs missing).
    """
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def version() -> str:
    """The installed distribution's version (importlib.metadata), else the package's own."""
    try:
        return importlib.metadata.version("invrecon")
    except importlib.metadata.PackageNotFoundError:
        from invrecon import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"invrecon {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"invrecon: unknown command {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    from invrecon.pipelines import logs

    logs.configure()
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


def console() -> None:
    """The `invrecon` command: run `main`, flush what it wrote, and leave with its exit code.

    The exit skips the interpreter's teardown (`os._exit`): threads that Beam's runner, gRPC and
    DuckDB leave behind can abort it in C++ ("terminate called without an active exception",
    exit 134), and a scheduler must see the code the run decided (0, 2, 3, 4), not a crash.
    Everything the command wrote is flushed first; every file it wrote was closed by the command.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
