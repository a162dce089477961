"""A run's stages as the user sees them: a live line on a terminal, a JSON line per stage in logs.

`Progress` times each stage on its own (`begin` starts it, `end` logs it with its own duration,
never the time since the run started) and logs one record per stage with the structured fields
`run_id`, `stage`, `duration_s` and `counts` (`pipelines.logs` writes them as JSON lines when
stderr is not a terminal):

    progress = Progress(label="invrecon batch 2026-11-30", total_files=10)
    progress.begin("graph")
    ...                                          # the Beam graph runs
    progress.end(files_read=10, records_read=636)   # "stage graph done in 11.37 s: ..."
    progress.close()                             # clears the live line before the summary

On a terminal (stderr a tty) a live line shows the stage, files read, records read and the time
elapsed, redrawn a few times a second by a background thread (tqdm), and log lines are written
above it. Files and records count live while the graph runs in this process (Beam's in-process
FnApiRunner, the default): the readers log one DEBUG record per batch read on `invrecon.ingest`,
which `Progress` counts while its live line is open. Workers of other runners count in their own processes;
there the line shows the totals when the graph has finished.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

__all__ = ["GRAPH_COUNTERS", "Progress", "READ_LOGGER", "STEP_GROUPS", "graph_counts", "step_times"]

log = logging.getLogger("invrecon.batch")

# The readers' logger; its DEBUG records carry `files_read` / `records_read` (transforms.ingest).
READ_LOGGER = "invrecon.ingest"
# The batch graph's steps by the first word of their top-level label (`pipelines.batch.build`).
STEP_GROUPS = (
    ("Read", "read"), ("Validate", "validate"), ("DedupEvents", "dedup"), ("OpenInTransit", "in_transit"),
    ("Reconcile", "reconcile"), ("Write", "write"), ("SplitByEventDate", "write"), ("SettleRun", "settle"),
)
_TOTAL_MSECS = "beam:metric:ptransform_execution_time:total_msecs:v1"
# The graph's Beam counters (transforms.ingest, .dedup, .reconcile, .parquet_folder) its stage line reports.
GRAPH_COUNTERS = ("files_read", "records_read", "events_deduplicated", "keys_reconciled", "discrepancies_found", "rows_written")
# How often the live line is redrawn (seconds): smooth enough for a clock, cheap for the run.
REFRESH_S = 0.25


class _ReadCounter(logging.Handler):
    """Adds up the `files_read` / `records_read` of the readers' DEBUG records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.files = 0
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.files += int(getattr(record, "files_read", 0) or 0)
        self.records += int(getattr(record, "records_read", 0) or 0)


def _describe(counts: dict) -> str:
    """`10 files, 636 records read` style text of a stage's counts, for the human line."""
    return ", ".join(f"{v:,} {k.replace('_', ' ')}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


class Progress:
    """A run's stages: their own durations and counts as log records, and a live line on a terminal.

    Args:
      label: what runs (`invrecon batch 2026-11-30`), the start of the live line.
      total_files: input files of the run, when known (the live line shows files read / total).
      stream: where the live line goes (stderr).
      live: force the live line on or off; by default on when `stream` is a terminal.
    """

    def __init__(self, *, label: str, total_files: int | None = None, stream=None, live: bool | None = None):
        self.label = label
        self.total_files = total_files
        self.run_id: str | None = None
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.stage: str | None = None
        self.started = self._t0 = time.monotonic()
        self.files = self.records = 0  # totals known after the graph (any runner)
        self._counter: _ReadCounter | None = None
        self._bar = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.live:
            self._count_reads()
            self._open_line()

    # ------------------------------------------------------------------ stages

    def begin(self, stage: str) -> None:
        """Start timing `stage` (the live line shows it from now)."""
        self.stage, self._t0 = stage, time.monotonic()

    def end(self, **counts) -> float:
        """Log the current stage with its own duration and `counts`; return that duration."""
        seconds = time.monotonic() - self._t0
        self.log_stage(self.stage or "?", seconds, counts)
        self._t0 = time.monotonic()
        return seconds

    def log_stage(self, stage: str, seconds: float, counts: dict | None = None, *, indent: str = "") -> None:
        """One structured record: `stage`, `duration_s`, `counts` and the run id."""
        counts = dict(counts or {})
        text = f": {_describe(counts)}" if counts else ""
        extra = {"stage": stage, "duration_s": round(seconds, 3), "counts": counts}
        if self.run_id:
            extra["run_id"] = self.run_id
        log.info("%sstage %s done in %.2f s%s", indent, stage, seconds, text, extra=extra)

    def end_graph(self, pipeline_result) -> None:
        """End the `graph` stage with Beam's counters, then log each group of steps (`graph/<group>`)
        and the runner's own share (shuffles, coders, buffers) of the graph's wall time."""
        counts = graph_counts(pipeline_result)
        self.files = max(self.files, counts.get("files_read", 0))
        self.records = max(self.records, counts.get("records_read", 0))
        wall_s = self.end(**counts)
        times = step_times(pipeline_result)
        if not times:
            return
        for group, seconds in times.items():
            self.log_stage(f"graph/{group}", seconds, indent="  ")
        self.log_stage("graph/runner", max(0.0, wall_s - sum(times.values())), indent="  ")

    def read_so_far(self) -> tuple[int, int]:
        """(files, records) read: counted live in this process (on a terminal), or the totals once known."""
        live = (self._counter.files, self._counter.records) if self._counter else (0, 0)
        return max(self.files, live[0]), max(self.records, live[1])

    # ------------------------------------------------------------------ the live line

    def _count_reads(self) -> None:
        """Count the readers' DEBUG records (only for the live line: off the terminal, none is made)."""
        self._counter = _ReadCounter()
        reader = logging.getLogger(READ_LOGGER)
        self._reader_level = reader.level
        reader.addHandler(self._counter)
        if not reader.isEnabledFor(logging.DEBUG):
            reader.setLevel(logging.DEBUG)  # the root handler still prints only from INFO

    def _open_line(self) -> None:
        from tqdm import tqdm

        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            size = os.terminal_size((0, 0))
        # A terminal that reports no size (a bare pseudo-terminal) would get no line at all from tqdm.
        sizing = {"dynamic_ncols": True} if size.columns and size.lines else {"ncols": 100, "nrows": 24}
        self._bar = tqdm(total=self.total_files, file=self.stream, leave=False, mininterval=0, bar_format="{desc}", disable=False, **sizing)
        self._thread = threading.Thread(target=self._redraw, name="invrecon-progress", daemon=True)
        self._thread.start()

    def line(self) -> str:
        """The live line's text: label, stage, files read, records read, elapsed."""
        files, records = self.read_so_far()
        of = f"/{self.total_files}" if self.total_files is not None else ""
        elapsed = int(time.monotonic() - self.started)
        return (f"{self.label} | {self.stage or 'starting'} | files read {files}{of} | records {records:,} | "
                f"elapsed {elapsed // 60}:{elapsed % 60:02d}")

    def _redraw(self) -> None:
        while not self._stop.wait(REFRESH_S):
            bar = self._bar
            if bar is not None:
                bar.set_description_str(self.line(), refresh=True)

    def close(self) -> None:
        """Stop counting and clear the live line (before the summary is printed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._counter is not None:
            reader = logging.getLogger(READ_LOGGER)
            reader.removeHandler(self._counter)
            reader.setLevel(self._reader_level)
            self._counter = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def step_times(pipeline_result) -> dict[str, float]:
    """Seconds each group of the graph's steps spent in its own code (Beam's per-step execution
    time, which excludes the steps it feeds); {} when the runner does not report it."""
    infos = getattr(pipeline_result, "monitoring_infos", None)
    if infos is None:
        return {}
    from apache_beam.metrics.monitoring_infos import extract_metric_result_map_value

    out: dict[str, float] = {}
    for info in infos():
        if info.urn != _TOTAL_MSECS:
            continue
        top = info.labels.get("PTRANSFORM", "").split("/", 1)[0]
        group = next((g for prefix, g in STEP_GROUPS if top.startswith(prefix)), "other")
        out[group] = out.get(group, 0.0) + (extract_metric_result_map_value(info) or 0) / 1000
    return out


def graph_counts(pipeline_result) -> dict[str, int]:
    """The GRAPH_COUNTERS the runner reports (committed values, else attempted), in that order."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = pipeline_result.metrics().query(MetricsFilter().with_names(list(GRAPH_COUNTERS)))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics: the line goes without counts
        return {}
    totals: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + int(value or 0)
    return {name: totals[name] for name in GRAPH_COUNTERS if name in totals}
