"""Refuse command-line flags that neither invrecon nor Beam knows, before anything runs.

A job's own argparse parser takes its flags with `parse_known_args` and hands the rest to Beam's
`PipelineOptions`. Beam only logs a warning for a flag it does not know and drops it, so a typo
such as `--fail-on-alerts` used to run the whole job and exit 0 although alerts fired (issue 12).
`check_beam_args` parses what is left with every option Beam has registered (every loaded
`PipelineOptions` subclass, the way `PipelineOptions.get_all_options` builds its parser) and
raises `UsageError` (exit 2) for anything else, naming the flag and the closest valid one:

    >>> check_beam_args(["--runner", "DirectRunner", "--direct_num_workers", "2"], prog="invrecon batch")
    ['--runner', 'DirectRunner', '--direct_num_workers', '2']
    >>> check_beam_args(["--fail-on-alerts"], prog="invrecon batch", own=["--fail-on-alert"])
    Traceback (most recent call last):
    ...
    invrecon.pipelines.beam_args.UsageError: invrecon batch: unknown option --fail-on-alerts (neither an invrecon option nor a Beam pipeline option); did you mean --fail-on-alert?

A value Beam's own parser refuses (`--direct_num_workers two`) is a usage error too. Options that
a runner registers only when its module is imported count once that module is loaded, exactly as
Beam would see them when it builds the pipeline.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable, Sequence

__all__ = ["UsageError", "beam_option_flags", "check_beam_args"]

_NUMBER = re.compile(r"^-\d+(\.\d*)?([eE][-+]?\d+)?$")


class UsageError(ValueError):
    """A command-line problem (exit 2); the message names the option at fault."""

    exit_code = 2


class _RaisingParser(argparse.ArgumentParser):
    """Beam's argument parser, raising instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UsageError(message)


def _beam_parser() -> argparse.ArgumentParser:
    """A parser with every option of every loaded `PipelineOptions` subclass, as Beam builds it."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser_cls = type("_InvreconBeamParser", (_RaisingParser, _BeamArgumentParser), {})
    parser = parser_cls(allow_abbrev=False, add_help=False)
    seen: set[str] = set()
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        # The last definition of a class name wins, as in get_all_options (a main session may
        # define the same options class twice); a subclass without its own options adds none.
        if str(cls) in seen or "_add_argparse_args" not in cls.__dict__:
            continue
        seen.add(str(cls))
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's registration hook
        except argparse.ArgumentError:
            continue  # an option a sibling class registered already: it is known either way
    return parser


def beam_option_flags() -> frozenset[str]:
    """Every flag (`--runner`, `--direct_num_workers`, ...) a loaded PipelineOptions class defines."""
    return frozenset(s for a in _beam_parser()._actions for s in a.option_strings)  # noqa: SLF001


def _flags_of(own: argparse.ArgumentParser | Iterable[str]) -> list[str]:
    if isinstance(own, argparse.ArgumentParser):
        return [s for a in own._actions for s in a.option_strings if s.startswith("--")]  # noqa: SLF001
    return [str(s) for s in own]


def _closest(name: str, own: Sequence[str], beam: Iterable[str]) -> str | None:
    """invrecon's closest flag first, then Beam's (`--direct-num-workers` -> `--direct_num_workers`)."""
    for pool in (own, sorted(beam)):
        hit = difflib.get_close_matches(name, list(pool), n=1, cutoff=0.75)
        if hit:
            return hit[0]
    return None


def check_beam_args(argv: list[str], *, prog: str, own: argparse.ArgumentParser | Iterable[str] = ()) -> list[str]:
    """Check the arguments invrecon's parser left over; return them for `PipelineOptions`.

    Args:
      argv: what `parse_known_args` did not take (the would-be Beam flags).
      prog: the command, for the message (`invrecon batch`).
      own: invrecon's parser for this command (or its flags), for the "did you mean" hint.

    Returns:
      `argv` unchanged, when every flag in it is a Beam pipeline option with a valid value.

    Raises:
      UsageError: an unknown flag (naming it and the closest invrecon or Beam flag), a stray
        argument, or a value Beam's parser refuses (`--direct_num_workers two`).
    """
    argv = list(argv)
    parser = _beam_parser()
    try:
        _, unknown = parser.parse_known_args(argv)
    except UsageError as e:
        raise UsageError(f"{prog}: {e}") from None
    if not unknown:
        return argv
    first = unknown[0]
    if first.startswith("-") and first != "--" and not _NUMBER.match(first):
        name = first.split("=", 1)[0]
        hint = _closest(name, _flags_of(own), _flags_of(parser))
        suffix = f"; did you mean {hint}?" if hint else ""
        raise UsageError(f"{prog}: unknown option {name} (neither an invrecon option nor a Beam pipeline option){suffix}")
    raise UsageError(f"{prog}: unexpected argument {first!r}")
