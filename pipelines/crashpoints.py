"""Crash points: the steps of finishing a run at which the crash tests kill the process.

`crashpoint(name)` marks a step; `INVRECON_CRASH_AT=<point>:<n>` (a test hook) kills the process
there. `tests/test_publish_crash.py` runs a batch killed at every point in `CRASH_POINTS`.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_AT_ENV", "CRASH_POINTS", "CRASH_TRACE_ENV", "crashpoint"]

# Every step of finishing a run at which a crash leaves a different state on disk, in the order
# a run passes them (a step inside a loop is passed once per file). The crash tests read this
# table: a step added here (and passed by a re-run) is tested without touching the tests.
CRASH_POINTS = {
    "publish.plan": "the publish plan is written in the staging folder; nothing renamed yet",
    "publish.rename": "after each rename of a staged file into its partition (not committed)",
    "publish.commit_tmp": "the commit file is written under its tmp name, not yet renamed",
    "publish.commit": "the commit file is in place: the run is published, nothing deleted yet",
    "publish.checkpoint_tmp": "the checkpoint of this commit is written under its tmp name, not yet renamed",
    "publish.checkpoint": "the checkpoint of this commit is in place, the older ones not yet deleted",
    "publish.delete": "after each delete of a file that no latest commit names",
    "publish.gc": "every replaced file is deleted",
    "publish.replace_folder": "a replaced folder (the EDI acks) is removed, the new one not yet moved in",
    "finish.staging": "the staging folder is being removed (its plan is gone, the rest is not)",
    "warehouse.build": "the new warehouse file is half written (`<db>.loading-*` and its WAL)",
    "warehouse.swap": "the new warehouse file is complete, not yet renamed over the old one",
}
# `INVRECON_CRASH_AT=<point>:<n>` kills this process (SIGKILL: no clean-up, no finally) the n-th
# time it passes <point> (counted over the process: a backfill's dates add up); `INVRECON_CRASH_TRACE=<file>` appends the name of every point passed.
# Test hooks only: both are read when a point is passed, never set by invrecon itself.
CRASH_AT_ENV = "INVRECON_CRASH_AT"
CRASH_TRACE_ENV = "INVRECON_CRASH_TRACE"
_passed: dict[str, int] = {}  # launcher-process counts of the points passed; never in a DoFn


def crashpoint(name: str) -> None:
    """Mark a step of the publish (`CRASH_POINTS`); the crash tests kill the process here.

    Raises:
      ValueError: `name` is not in CRASH_POINTS (a typo would make a step silently untested).
    """
    if name not in CRASH_POINTS:
        raise ValueError(f"`name` must be one of CRASH_POINTS, got {name!r}")
    _passed[name] = n = _passed.get(name, 0) + 1
    trace = os.environ.get(CRASH_TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(f"{name}\n")
    if os.environ.get(CRASH_AT_ENV) == f"{name}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)
