"""Several processes, same answer (issue 10 §5): the batch on two SDK worker processes.

`invrecon batch` runs on the FnApiRunner unless `--runner` says otherwise; with
`--direct_running_mode multi_processing --direct_num_workers 2` that runner starts two Python
SDK worker processes (`python -m apache_beam.runners.worker.sdk_worker_main`) and runs the
bundles there, so every DoFn is pickled, shipped and set up in another process, as on a
distributed runner. The test watches this process's descendants while the batch runs (Linux
/proc), so it fails if the flags stop producing worker processes, and checks that every
published table holds the rows of the in-process run (`committed_run`).
"""

from __future__ import annotations

import os
import pathlib
import threading
import time

import pytest

from tests.conftest import WORLD, published_rows, run_batch

WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"


class WorkerWatch(threading.Thread):
    """Record the pids of this process's descendants that run a Beam SDK worker, until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self.done = threading.Event()

    @staticmethod
    def _processes() -> dict[int, tuple[int, list[str]]]:
        """pid -> (parent pid, argv) of every process that can be read now."""
        out = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = pathlib.Path(entry.path, "stat").read_text()
                argv = pathlib.Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
            out[int(entry.name)] = (ppid, [a.decode(errors="replace") for a in argv if a])
        return out

    def run(self) -> None:
        me = os.getpid()
        while not self.done.is_set():
            procs = self._processes()
            for pid, (_, argv) in procs.items():
                if WORKER_MODULE not in argv:  # the Python worker itself, not the shell that starts it
                    continue
                parent, seen = procs.get(pid, (0, None))[0], set()
                while parent and parent != me and parent not in seen:
                    seen.add(parent)
                    parent = procs.get(parent, (0, None))[0]
                if parent == me:
                    self.pids.add(pid)
            self.done.wait(0.25)  # workers live for the whole run: no need to look often


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="watches worker processes through Linux /proc")
def test_two_worker_processes_publish_the_rows_of_the_in_process_run(committed_run, tmp_path):
    watch = WorkerWatch()
    watch.start()
    t0 = time.monotonic()
    try:
        code = run_batch(WORLD / "config.yaml", output=tmp_path / "out",
                         extra=["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"])
    finally:
        watch.done.set()
        watch.join()
    assert code == 0
    assert len(watch.pids) == 2, f"expected 2 SDK worker processes, saw {sorted(watch.pids)} in {time.monotonic() - t0:.1f} s"
    assert os.getpid() not in watch.pids
    multi, single = published_rows(tmp_path / "out"), published_rows(committed_run)
    assert len(single["discrepancies"]) == 22
    for table in single:
        assert multi[table] == single[table], table
