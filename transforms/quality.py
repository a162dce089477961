"""Data-quality gates with Great Expectations, on each source's materialized canonical batch.

The batch stops between reading and reconciling: every source's canonical rows (positions,
movements, in-transit lines) are materialized, and here each source's batch is validated once
against the suite of its record type (`expectations/<record>.json`, GX's own suite JSON) plus the
source's own suite when the config names one. Then:

- row-level expectations (`expect_column_values_to_*`: not null, in set, between, regex) send
  exactly the failing rows (GX's `unexpected_index_list`) to quarantine, with the expectation as
  the reason; the rest flow on to the reconciliation;
- table-level expectations (row count against the previous run, unique keys, as-of freshness)
  gate the run: a failed `critical` one stops it after quarantine and `dq_results` are written
  (exit code 3); a failed `warning` one is recorded and the run goes on.

Every expectation carries its severity in `meta.severity` (`critical` or `warning`), mirrored into
GX's own `severity` field. Suites may use parameters, filled per run by `suite_parameters`:
`min_rows` / `max_rows` (the previous run's count of the source times 1 -/+ the band),
`fresh_after` (cut-off minus the allowed as-of lag) and `window_start` / `window_end`.

In the batch, batches are validated on workers (`transforms.validate`) and their results combined
per expectation (`combine_results`); the launcher renders the combined results as GX Data Docs
under `<output>/data_docs/` (`pipelines.data_docs`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.resources
import json
import logging
import os
import pathlib
import threading
from collections.abc import Sequence

import fsspec
import pandas as pd
import polars as pl

__all__ = [
    "EXPECTATIONS_DIR",
    "RECORD_SUITES",
    "DqOutcome",
    "SuiteError",
    "expectation_label",
    "load_suite",
    "shared_validator",
    "suite_parameters",
    "Validator",
    "combine_results",
]

log = logging.getLogger("invrecon.quality")

EXPECTATIONS_DIR = pathlib.Path(importlib.resources.files("invrecon.expectations"))
# Canonical record type -> suite file in expectations/.
RECORD_SUITES = {"positions": "position.json", "movements": "movement.json", "in_transit_lines": "in_transit.json"}
SEVERITIES = ("critical", "warning")
# Expectations whose result names rows; all others judge the batch as a whole.
ROW_LEVEL_PREFIXES = ("expect_column_values_to_", "expect_column_pair_values_", "expect_multicolumn_values_", "expect_select_column_values_")


class SuiteError(ValueError):
    """A suite file that is not a usable GX suite; names the file and the expectation."""


def load_suite(path: str | os.PathLike) -> dict:
    """Read a GX suite JSON (a path or an fsspec URL) and check every expectation has a known severity in its meta."""
    path = str(path)
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SuiteError(f"{path}: expectation suite not found") from None
    except ValueError as e:
        raise SuiteError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list) or not doc.get("name"):
        raise SuiteError(f"{path}: a suite needs a `name` and a list of `expectations`")
    for i, exp in enumerate(doc["expectations"]):
        sev = (exp.get("meta") or {}).get("severity")
        if sev not in SEVERITIES:
            raise SuiteError(f"{path}: expectations[{i}] ({exp.get('type')}): meta.severity must be one of {', '.join(SEVERITIES)}, got {sev!r}")
        if not str(exp.get("type", "")).startswith("expect_"):
            raise SuiteError(f"{path}: expectations[{i}]: `type` {exp.get('type')!r} is not an expectation")
    return doc


def suite_parameters(*, cutoff: dt.datetime, previous_rows: int | None, band: float, max_lag_hours: float) -> dict:
    """The run's values for the suites' `$PARAMETER`s (see the module docstring)."""
    lag = dt.timedelta(hours=max_lag_hours)
    if previous_rows:
        lo, hi = int(previous_rows * (1 - band)), int(previous_rows * (1 + band)) + 1
    else:
        lo, hi = 0, 2**62  # no earlier run: nothing to compare against
    return {
        "min_rows": lo,
        "max_rows": hi,
        "fresh_after": (cutoff - lag).isoformat(),
        "window_start": (cutoff - lag).isoformat(),
        "window_end": (cutoff + lag).isoformat(),
    }


@dataclasses.dataclass
class DqOutcome:
    """What validating one source's batch decided."""

    keep: pl.Series  # boolean mask over the input rows
    quarantine: pl.DataFrame  # file, locator, reason_code, reason, raw for the failing rows
    results: list[dict]  # one dq_results row per expectation
    gate_failed: bool


def expectation_label(cfg) -> str:
    """The name a dq_results row gives an expectation: its type, with its column(s) when it has any."""
    kw = cfg.kwargs
    col = kw.get("column") or ",".join(kw.get("column_list") or []) or None
    return f"{cfg.type}({col})" if col else cfg.type


def _result_row(r, *, suite: str, source: str, rows: int, run_id: str, run_date: dt.date) -> tuple[dict, list[int]]:
    """One dq_results row of a GX expectation result, and the indices of the rows it failed.

    Keys starting with `_` are for `combine_results` (the expectation's type, kwargs, observed
    value and whether it gates the run on this batch alone); they are not dq_results columns.
    """
    cfg = r.expectation_config
    severity = (cfg.meta or {}).get("severity", "critical")
    row_level = cfg.type.startswith(ROW_LEVEL_PREFIXES)
    raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
    res = r.result or {}
    bad = [int(i) for i in res.get("unexpected_index_list") or []] if row_level and not r.success and not raised else []
    detail = {k: res.get(k) for k in ("observed_value", "unexpected_percent") if res.get(k) is not None}
    if raised:
        detail["exception"] = r.exception_info.get("exception_message")
    observed = res.get("observed_value")
    row = {
        "run_id": run_id, "run_date": run_date, "source": source, "suite": suite,
        "expectation": expectation_label(cfg), "column": cfg.kwargs.get("column"),
        "success": bool(r.success), "element_count": int(res.get("element_count") or rows),
        "unexpected_count": int(res.get("unexpected_count") or 0), "severity": severity,
        "details": json.dumps(detail, default=str) if detail else None,
        "_type": cfg.type, "_kwargs": json.dumps(dict(cfg.kwargs), default=str),
        "_observed": None if observed is None else (observed.isoformat() if hasattr(observed, "isoformat") else observed),
        "_rows": rows, "_raised": raised,
        "_gates": not r.success and (not row_level or raised) and severity == "critical",
    }
    return row, bad


def _columns_of(suites: Sequence[dict], available: Sequence[str]) -> list[str]:
    """The columns of `available` that some expectation of `suites` reads, in frame order."""
    named: set[str] = set()
    for doc in suites:
        for exp in doc["expectations"]:
            kw = exp.get("kwargs") or {}
            named.update(c for c in (kw.get("column"), kw.get("column_A"), kw.get("column_B")) if c)
            named.update(kw.get("column_list") or ())
    return [c for c in available if c in named and not c.startswith("_")]


@functools.lru_cache(maxsize=1)
def shared_validator() -> Validator:
    """The process's one Validator: a GX context costs ~2 s to build, and every ValidateRecords
    step of a worker process (positions, availability, movements, in-transit) can share it."""
    return Validator()


class Validator:
    """Validates batches of canonical records with Great Expectations, in an ephemeral context.

    Built once per worker (`ValidateRecordsFn.setup`): no files, no Data Docs, nothing shared
    between workers. Data Docs are built once per run from the combined results
    (`pipelines.data_docs.build`).

    Args:
      root: unused; kept so that callers that once passed a project folder still work.
      run_name: stamped on nothing any more; kept for the same reason.
    """

    def __init__(self, root: str | None = None, *, run_name: str = ""):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never phone home
        import great_expectations as gx

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self._gx = gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every batch by hashing the whole frame (a batch marker we never read):
        # about a third of its per-row cost. A threshold of 0 skips it.
        pandas_execution_engine.HASH_THRESHOLD = 0
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.datasource = self.context.data_sources.add_or_update_pandas("invrecon")
        self.asset = self.datasource.add_dataframe_asset("records")
        self.batch_def = self.asset.add_batch_definition_whole_dataframe("whole")
        self._suites: dict[str, object] = {}
        self._lock = threading.Lock()  # shared by the threads of a multi-threaded runner
        self.run_name = run_name

    def _suite(self, doc: dict):
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        # Named by content: one worker's Validator serves every job of its process (tests run
        # many), and two suites of one name but different expectations must not meet.
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
        suite = self._gx.ExpectationSuite(name=f"{doc['name']}@{digest}", meta=doc.get("meta") or {})
        for exp in doc["expectations"]:
            cfg = ExpectationConfiguration(type=exp["type"], kwargs=exp.get("kwargs") or {}, meta=exp.get("meta") or {})
            expectation = cfg.to_domain_obj()
            expectation.severity = exp["meta"]["severity"]
            suite.add_expectation(expectation)
        return self.context.suites.add(suite)

    def validate(self, df: pl.DataFrame, *, source: str, record: str, suites: Sequence[dict], params: dict, run_id: str, run_date: dt.date) -> DqOutcome:
        """Validate one source's batch against `suites`; see the module docstring for the rules."""
        with self._lock:
            return self._validate(df, source=source, suites=suites, params=params, run_id=run_id, run_date=run_date)

    def _validate(self, df: pl.DataFrame, *, source: str, suites: Sequence[dict], params: dict, run_id: str, run_date: dt.date) -> DqOutcome:
        # Only the columns the suites name go to pandas (the quarantine's raw text comes from `df`).
        pdf = df.select(_columns_of(suites, df.columns)).to_pandas(use_pyarrow_extension_array=False)
        pdf.index = pd.RangeIndex(len(pdf))
        batch = self.batch_def.get_batch(batch_parameters={"dataframe": pdf})
        bad_rows: dict[int, list[str]] = {}
        results: list[dict] = []
        gate_failed = False
        for doc in suites:
            key = json.dumps(doc, sort_keys=True, default=str)
            if key not in self._suites:
                self._suites[key] = self._suite(doc)
            suite_result = batch.validate(self._suites[key], result_format={"result_format": "COMPLETE"}, expectation_parameters=params)
            for r in suite_result.results:
                row, bad = _result_row(r, suite=doc["name"], source=source, rows=len(pdf), run_id=run_id, run_date=run_date)
                results.append(row)
                gate_failed |= row["_gates"]
                for idx in bad:
                    bad_rows.setdefault(idx, []).append(f"{row['expectation']} [{row['severity']}]")
        keep = pl.Series("keep", [True] * df.height, dtype=pl.Boolean)
        if bad_rows:
            idx = sorted(bad_rows)
            keep = keep.scatter(idx, False)
            failed = df.with_row_index("_i").filter(pl.col("_i").is_in(idx))
            reasons = pl.DataFrame({"_i": idx, "_reason": ["; ".join(bad_rows[i]) for i in idx]}, schema={"_i": pl.UInt32, "_reason": pl.String})
            failed = failed.join(reasons, on="_i", how="left")
            raw_cols = [c for c in df.columns if not c.startswith("_")]
            quarantine = failed.select(
                pl.col("file"), pl.col("locator"),
                pl.lit("dq_expectation_failed").alias("reason_code"),
                pl.format("failed expectation {}", pl.col("_reason")).alias("reason"),
                pl.struct([pl.col(c).cast(pl.String) for c in raw_cols]).struct.json_encode().alias("raw"),
            )
        else:
            quarantine = pl.DataFrame(schema={"file": pl.String, "locator": pl.String, "reason_code": pl.String, "reason": pl.String, "raw": pl.String})
        return DqOutcome(keep=keep, quarantine=quarantine, results=results, gate_failed=gate_failed)


# ----------------------------------------------------------------------------- in the Beam graph

# Table-level expectations that are recomputed from the combined batches (observed value of the
# whole source); any other table-level expectation succeeds only if it succeeded on every batch.
_RECOMBINED = ("expect_table_row_count_to_be_between", "expect_column_max_to_be_between", "expect_column_min_to_be_between")
# dq_results key of a partial result: (source, suite, expectation).
ResultKey = tuple[str, str, str]


def _bound(value, params: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params.get(value["$PARAMETER"])
    return value


def _comparable(value):
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return value


def _within(observed, kwargs: dict, params: dict) -> bool:
    if observed is None:
        return False
    lo, hi = _bound(kwargs.get("min_value"), params), _bound(kwargs.get("max_value"), params)
    value = _comparable(observed)
    try:
        return (lo is None or value >= _comparable(lo)) and (hi is None or value <= _comparable(hi))
    except TypeError:  # a bound of another type than the column: the expectation cannot hold
        return False


def combine_results(parts: Sequence[dict], *, params: dict) -> dict:
    """One dq_results row from the partial results of one expectation over every batch.

    Row-level expectations add up (element and unexpected counts; success when no batch found a
    bad row). The row count, column max and column min are recomputed on the whole source:
    rows = Σ batch rows, max = max of the batches' maxima, then checked against the bounds (the
    run's `$PARAMETER`s filled from `params`). Any other table-level expectation holds when it
    held on every batch.

    Example: three batches of 40, 50 and 10 rows against `expect_table_row_count_to_be_between`
    with min_rows 120 fail as one source of 100 rows, although each batch alone would pass a
    per-batch check of nothing.
    """
    first = parts[0]
    kind, kwargs = first["_type"], json.loads(first["_kwargs"])
    raised = any(p["_raised"] for p in parts)
    rows = sum(p["_rows"] for p in parts)
    row = {k: v for k, v in first.items() if not k.startswith("_")}
    row["element_count"] = sum(p["element_count"] for p in parts) if kind.startswith(ROW_LEVEL_PREFIXES) else rows
    row["unexpected_count"] = sum(p["unexpected_count"] for p in parts)
    observed = None
    if kind == "expect_table_row_count_to_be_between":
        observed = rows
    elif kind in ("expect_column_max_to_be_between", "expect_column_min_to_be_between"):
        seen = [_comparable(p["_observed"]) for p in parts if p["_observed"] is not None]
        if seen:
            observed = max(seen) if kind == "expect_column_max_to_be_between" else min(seen)
    if kind in _RECOMBINED:
        row["success"] = not raised and _within(observed, kwargs, params)
    else:
        row["success"] = not raised and all(p["success"] for p in parts)
    detail = {"observed_value": observed.isoformat() if hasattr(observed, "isoformat") else observed} if observed is not None else {}
    if row["element_count"] and kind.startswith(ROW_LEVEL_PREFIXES):
        detail["unexpected_percent"] = round(100.0 * row["unexpected_count"] / row["element_count"], 6)
    errors = [json.loads(p["details"]).get("exception") for p in parts if p["_raised"] and p["details"]]
    if errors:
        detail["exception"] = errors[0]
    row["details"] = json.dumps(detail, default=str) if detail else None
    return row

