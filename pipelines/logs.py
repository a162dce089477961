"""Where `invrecon`'s log lines go, and which library lines reach the user.

`configure` sends every log record to stderr: readable lines on a terminal (written above the live
progress display of `pipelines.progress`, never through it), one JSON object per line otherwise,
for schedulers and log shippers:

    {"ts": "2026-12-01T06:00:12+0000", "level": "info", "logger": "invrecon.batch",
     "msg": "stage graph done in 11.37 s: 10 files, 636 records read, 18 quarantined",
     "run_id": "2026-11-30-88339d7475e8", "stage": "graph", "duration_s": 11.367,
     "counts": {"files_read": 10, "records_read": 636, "records_quarantined": 18}}

Libraries speak only from WARNING, with two exceptions. Great Expectations sets some of its
loggers to INFO itself, so its records below WARNING are dropped at the handler whatever their
logger's level. Beam's Dataflow runner logs the job's id, its console URL and its state changes at
INFO: those lines are what a user needs to follow a Dataflow job, so they are let through.
"""

from __future__ import annotations

import json
import logging
import sys

__all__ = ["DATAFLOW_LINES", "FIELDS", "JsonFormatter", "configure"]

# Structured fields a log call may carry (`extra=`), copied into the JSON line as they are.
FIELDS = ("run_id", "stage", "duration_s", "counts")

# Beam's INFO lines a Dataflow user needs: logger -> the starts of the messages (format strings)
# let through. apiclient logs "To access the Dataflow monitoring console, please navigate to
# https://console.cloud.google.com/dataflow/jobs/<region>/<job id>?project=<project>".
DATAFLOW_LINES = {
    "apache_beam.runners.dataflow.internal.apiclient": ("To access the Dataflow monitoring console", "Created job with id"),
    "apache_beam.runners.dataflow.dataflow_runner": ("Job %s is in state",),
}
# Library loggers heard only from WARNING.
_QUIET = ("apache_beam", "great_expectations", "urllib3", "tqdm")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the structured FIELDS a record has."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _UserLines(logging.Filter):
    """Drop what is not about the user's run (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Beam's GCP IO logs this on every import when the optional BigQuery client is absent.
        if "apitools not found" in str(record.msg):
            return False
        if record.name.startswith("great_expectations") and record.levelno < logging.WARNING:
            return False
        starts = DATAFLOW_LINES.get(record.name)
        if starts is not None and record.levelno < logging.WARNING:
            return str(record.msg).startswith(starts)
        return True


class _TerminalHandler(logging.StreamHandler):
    """Human lines written through tqdm, which clears a live progress line first and redraws it after."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise into the run
            self.handleError(record)


def configure(*, stream=None) -> logging.Handler:
    """Send log records to `stream` (stderr): human lines on a terminal, JSON lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        handler: logging.Handler = _TerminalHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)  # a logger opened to DEBUG for the progress display prints nothing more
    handler.addFilter(_UserLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in DATAFLOW_LINES:
        logging.getLogger(name).setLevel(logging.INFO)
    return handler
