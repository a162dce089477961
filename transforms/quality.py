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

Results also go to a GX file context under `<output>/data_docs/`, whose Data Docs site
(`data_docs/gx/uncommitted/data_docs/local_site/index.html`) keeps every run's validations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
import json
import logging
import os
import pathlib
from collections.abc import Sequence

import pandas as pd
import polars as pl

__all__ = [
    "EXPECTATIONS_DIR",
    "RECORD_SUITES",
    "DqOutcome",
    "SuiteError",
    "load_suite",
    "suite_parameters",
    "Validator",
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
    """Read a GX suite JSON and check every expectation has a known severity in its meta."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
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


def _label(cfg) -> str:
    kw = cfg.kwargs
    col = kw.get("column") or ",".join(kw.get("column_list") or []) or None
    return f"{cfg.type}({col})" if col else cfg.type


class Validator:
    """A GX file context under `root`, validating pandas batches and building Data Docs.

    Args:
      root: folder of the GX project (created on first use); Data Docs live under it.
      run_name: GX run name, so Data Docs group this run's validations.
    """

    def __init__(self, root: str, *, run_name: str):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never phone home
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        os.makedirs(root, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=root)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.variables.save()
        self.datasource = self.context.data_sources.add_or_update_pandas("invrecon")
        self.run_name = run_name

    def _suite(self, doc: dict):
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        suite = self._gx.ExpectationSuite(name=doc["name"], meta=doc.get("meta") or {})
        for exp in doc["expectations"]:
            cfg = ExpectationConfiguration(type=exp["type"], kwargs=exp.get("kwargs") or {}, meta=exp.get("meta") or {})
            expectation = cfg.to_domain_obj()
            expectation.severity = exp["meta"]["severity"]
            suite.add_expectation(expectation)
        return self.context.suites.add_or_update(suite)

    def validate(self, df: pl.DataFrame, *, source: str, record: str, suites: Sequence[dict], params: dict, run_id: str, run_date: dt.date) -> DqOutcome:
        """Validate one source's batch against `suites`; see the module docstring for the rules."""
        gx = self._gx
        pdf = df.drop([c for c in df.columns if c.startswith("_")]).to_pandas(use_pyarrow_extension_array=False)
        pdf.index = pd.RangeIndex(len(pdf))
        asset_name = f"{record}__{source}"
        try:
            asset = self.datasource.get_asset(asset_name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(asset_name)
        batch_def = next((b for b in asset.batch_definitions if b.name == "whole"), None) or asset.add_batch_definition_whole_dataframe("whole")
        bad_rows: dict[int, list[str]] = {}
        results: list[dict] = []
        gate_failed = False
        for doc in suites:
            suite = self._suite(doc)
            vd = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=f"{doc['name']}__{source}", data=batch_def, suite=suite)
            )
            checkpoint = self.context.checkpoints.add_or_update(
                gx.Checkpoint(
                    name=f"{doc['name']}__{source}",
                    validation_definitions=[vd],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
                    result_format={"result_format": "COMPLETE"},
                )
            )
            run = checkpoint.run(
                batch_parameters={"dataframe": pdf},
                expectation_parameters=params,
                run_id=gx.core.run_identifier.RunIdentifier(run_name=self.run_name),
            )
            for suite_result in run.run_results.values():
                for r in suite_result.results:
                    cfg = r.expectation_config
                    severity = (cfg.meta or {}).get("severity", "critical")
                    row_level = cfg.type.startswith(ROW_LEVEL_PREFIXES)
                    raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
                    res = r.result or {}
                    unexpected = res.get("unexpected_count") or 0
                    if row_level and not r.success and not raised:
                        for idx in res.get("unexpected_index_list") or []:
                            bad_rows.setdefault(int(idx), []).append(f"{_label(cfg)} [{severity}]")
                    if not r.success and (not row_level or raised) and severity == "critical":
                        gate_failed = True
                    detail = {k: res.get(k) for k in ("observed_value", "unexpected_percent") if res.get(k) is not None}
                    if raised:
                        detail["exception"] = r.exception_info.get("exception_message")
                    results.append(
                        {
                            "run_id": run_id, "run_date": run_date, "source": source, "suite": doc["name"],
                            "expectation": _label(cfg), "column": cfg.kwargs.get("column"),
                            "success": bool(r.success), "element_count": int(res.get("element_count") or len(pdf)),
                            "unexpected_count": int(unexpected), "severity": severity,
                            "details": json.dumps(detail, default=str) if detail else None,
                        }
                    )
        keep = pl.Series("keep", [True] * df.height)
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
