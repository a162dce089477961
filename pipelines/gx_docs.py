"""Great Expectations Data Docs pages of one run, rendered from the combined results, offline.

The suites run in the Beam graph on batches; the launcher gets one combined row per (source,
suite, expectation) (`quality_gate.decide`). Here those rows become GX objects again: one
`ExpectationSuiteValidationResult` per (source, suite), with each expectation's configuration
taken from the suite the run used (its `$PARAMETER`s and the run's values for them), stored in a
GX file context in a scratch folder, and rendered with `context.build_data_docs` for just this
run's results and suites. So the pages are GX's own validation and suite pages.

Two things GX cannot render alone, and what is done about them:

- the launcher's own checks (`source` suite: `expect_source_to_deliver_valid_records`;
  `history` suite: `metric_within_<k>_sigma(<metric>)`) are not GX expectations: two small
  `BatchExpectation` classes below give GX their wording (they are never run by GX);
- GX's page templates load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from CDNs
  and a logo from GX's servers. `OfflinePageView`, configured as the view of the site's
  sections, puts invrecon's templates (`templates/gx/`) before GX's: no remote stylesheet,
  script or image, a Content-Security-Policy that forbids fetching anything, the few Bootstrap
  classes and Font Awesome icons the pages use as local CSS, `<details>` for GX's scripted
  collapses, and a CSS-only "Failed only" filter.

The site index is not GX's (it lists only what one scratch context holds, with a script):
`pipelines.data_docs` writes a static one over the runs it keeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
import json
import logging
import os
import pathlib
import re
from collections.abc import Sequence
from typing import ClassVar

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never phone home

import great_expectations as gx  # noqa: E402
from great_expectations.core.expectation_validation_result import (  # noqa: E402
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.expectation import BatchExpectation  # noqa: E402
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration  # noqa: E402
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent  # noqa: E402
from great_expectations.render.renderer.renderer import renderer  # noqa: E402
from great_expectations.render.view import DefaultJinjaPageView  # noqa: E402
from jinja2 import ChoiceLoader, FileSystemLoader  # noqa: E402

from invrecon.pipelines.quality_gate import stops_run  # noqa: E402
from invrecon.transforms.quality import ROW_LEVEL_PREFIXES, expectation_label  # noqa: E402

__all__ = ["GATE_SUITES", "ExpectMetricWithinHistory", "ExpectSourceToDeliverValidRecords", "OfflinePageView", "Page", "render_run"]

log = logging.getLogger("invrecon.data_docs")

TEMPLATES = pathlib.Path(__file__).with_name("templates") / "gx"
# The launcher's own checks (pipelines.quality_gate): suite name -> what the index says of it.
GATE_SUITES = {"source": "source-level checks", "history": "metric history (Deequ-style anomalies)"}
_HISTORY_LABEL = re.compile(r"^metric_within_(?P<k>[^_]+)_sigma\((?P<metric>.*)\)$")
_REMOTE_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)")
SITE = "invrecon_offline"


# ----------------------------------------------------------------------------- GX extensions


def _text(template: str, params: dict) -> list:
    return [RenderedStringTemplateContent(content_block_type="string_template", string_template={"template": template, "params": params, "styling": {}})]


class ExpectSourceToDeliverValidRecords(BatchExpectation):
    """Expect a source to deliver at least `min_records` valid records (invrecon's source gate).

    Decided by `invrecon.pipelines.quality_gate` on the launcher from the run's counts, not by
    GX: the class exists so that GX can render the result. `min_records` is
    `quality.min_share_of_history` of the median of the source's recent runs, at least 1.
    """

    min_records: int = 1
    median_of_recent_runs: float | None = None

    domain_keys: ClassVar[tuple[str, ...]] = ()
    success_keys = ("min_records",)
    args_keys = ("min_records",)
    library_metadata: ClassVar[dict] = {"maturity": "experimental", "tags": ["invrecon"], "contributors": ["invrecon"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None):
        kw = (configuration or result.expectation_config).kwargs
        if kw.get("median_of_recent_runs") is not None:
            return _text("Must deliver at least $min_records valid records (its recent runs delivered a median of $median_of_recent_runs).", dict(kw))
        return _text("Must deliver at least $min_records valid record(s).", dict(kw))

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        raise NotImplementedError("decided by invrecon.pipelines.quality_gate on the launcher")


class ExpectMetricWithinHistory(BatchExpectation):
    """Expect a run metric within mean ± k standard deviations of the source's last runs.

    Deequ-style anomaly check of `invrecon.pipelines.quality_gate` (suite `history`); only
    rendered by GX, never run by it.
    """

    metric: str
    k: float = 3.0

    domain_keys: ClassVar[tuple[str, ...]] = ()
    success_keys = ("metric", "k")
    args_keys = ("metric", "k")
    library_metadata: ClassVar[dict] = {"maturity": "experimental", "tags": ["invrecon"], "contributors": ["invrecon"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None):
        kw = (configuration or result.expectation_config).kwargs
        return _text("$metric must stay within $k standard deviations of its mean over the last runs.", dict(kw))

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        raise NotImplementedError("decided by invrecon.pipelines.quality_gate on the launcher")


def _default_css() -> str:
    """GX's own page styles without the rules that fetch images from GX's servers."""
    css = importlib.resources.files("great_expectations").joinpath("render/view/static/styles/data_docs_default_styles.css").read_text()
    return _REMOTE_URL.sub("none", css)


class OfflinePageView(DefaultJinjaPageView):
    """GX's page view with invrecon's offline templates (`templates/gx/`) searched first."""

    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory=custom_styles_directory, custom_views_directory=custom_views_directory)
        self.env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), self.env.loader])
        self.env.globals["gx_default_css"] = _default_css()


# ----------------------------------------------------------------------------- combined rows -> GX


@dataclasses.dataclass(frozen=True)
class Page:
    """One file of the run's Data Docs: where GX wrote it and where it goes in the site."""

    source: str | None
    suite: str
    kind: str  # "validation" (html), "result" (GX's validation result JSON) or "suite" (html)
    local: pathlib.Path
    path: str  # relative to the Data Docs folder


def _details(row: dict) -> dict:
    try:
        return json.loads(row.get("details") or "{}") or {}
    except ValueError:
        return {}


def _gate_config(row: dict) -> ExpectationConfiguration:
    """The configuration of a launcher-side check, in the words of the classes above."""
    d = _details(row)
    if row["suite"] == "source":
        why = "a source that delivers no valid record, or far fewer than its recent runs"
    else:
        why = "a run metric far from its recent history: worth a look, never a gate"
    meta = {"severity": row["severity"], "why": why}
    if row["suite"] == "source":
        kwargs = {"min_records": int(d.get("floor", 1))}
        if d.get("median_of_recent_runs") is not None:
            kwargs["median_of_recent_runs"] = d["median_of_recent_runs"]
        return ExpectationConfiguration(type="expect_source_to_deliver_valid_records", kwargs=kwargs, meta=meta,
                                        notes=f"severity: {row['severity']} (quality.source_volume_severity)")
    m = _HISTORY_LABEL.match(row["expectation"])
    kwargs = {"metric": m["metric"], "k": float(m["k"])} if m else {"metric": row["expectation"]}
    return ExpectationConfiguration(type="expect_metric_within_history", kwargs=kwargs, meta=meta, notes="severity: warning (a log line, never a gate)")


def _observed(row: dict) -> object:
    d = _details(row)
    if row["suite"] == "source":
        return f"{d.get('written', 0)} valid of {d.get('read', row['element_count'])} read ({d.get('quarantined', 0)} quarantined)"
    if row["suite"] == "history":
        return f"{d.get('value')} (mean {d.get('mean')} ± {d.get('std')} over {d.get('runs')} runs)"
    return d.get("observed_value")


def _suite_config(exp: dict) -> ExpectationConfiguration:
    meta = dict(exp.get("meta") or {})
    notes = f"severity: {meta.get('severity', 'critical')}" + (f" ({meta['why']})" if meta.get("why") else "")
    return ExpectationConfiguration(type=exp["type"], kwargs=dict(exp.get("kwargs") or {}), meta=meta, notes=notes)


def _validation_result(row: dict, config: ExpectationConfiguration) -> ExpectationValidationResult:
    d = _details(row)
    if config.type.startswith(ROW_LEVEL_PREFIXES):
        result = {"element_count": row["element_count"], "unexpected_count": row["unexpected_count"],
                  "unexpected_percent": d.get("unexpected_percent", 0.0), "missing_count": 0, "missing_percent": 0.0,
                  "unexpected_percent_nonmissing": d.get("unexpected_percent", 0.0), "partial_unexpected_list": []}
    else:
        result = {"observed_value": _observed(row)}
    raised = "exception" in d
    return ExpectationValidationResult(
        success=bool(row["success"]), expectation_config=config, result=result,
        exception_info={"raised_exception": raised, "exception_message": d.get("exception"), "exception_traceback": None},
    )


def _effect(row: dict, config: ExpectationConfiguration) -> str:
    """What a failed expectation did to the run, in words (quality_gate.stops_run decides)."""
    if stops_run(row):
        effect = "critical: stopped the run (data-quality gate, exit 3)"
    elif row["severity"] == "critical":
        effect = f"critical, row-level: its {row['unexpected_count']} failing row(s) went to quarantine"
    else:
        effect = f"{row['severity']}: recorded, the run went on"
    why = (config.meta or {}).get("why")
    return f"{effect}. Why it matters: {why}" if why else effect


def _suite_docs(gate) -> dict[tuple[str, str], tuple[str, dict]]:
    """(source, suite name) -> (record, suite document) of the run's plan."""
    out = {}
    for record, by_source in gate.suites.items():
        for source, docs in by_source.items():
            for doc in docs:
                out[(source, doc["name"])] = (record, doc)
    return out


def _configs_by_label(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for exp in doc["expectations"]:
        out.setdefault(expectation_label(_suite_config(exp)), []).append(exp)
    return out


def validation_results(rows: Sequence[dict], gate, *, run_id: str, run_date: dt.date, run_time: dt.datetime) -> list[tuple[str, str, str, ExpectationSuiteValidationResult]]:
    """(source, suite, record, result) per (source, suite) of the combined rows, in their order."""
    docs = _suite_docs(gate)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["source"], row["suite"]), []).append(row)
    out = []
    for (source, suite), group in grouped.items():
        record, doc = docs.get((source, suite), ("", None))
        by_label = _configs_by_label(doc) if doc else {}
        results, failed = [], {}
        for row in group:
            candidates = by_label.get(row["expectation"])
            config = _suite_config(candidates.pop(0)) if candidates else _gate_config(row)
            results.append(_validation_result(row, config))
            if not row["success"]:
                failed[row["expectation"]] = _effect(row, config)
        params = gate.params.get(record, {}).get(source, {}) if record else {}
        ok = sum(r.success for r in results)
        meta = {
            "great_expectations_version": gx.__version__,
            "run_id": {"run_name": run_id, "run_time": run_time.isoformat()},
            "validation_time": run_time.strftime("%Y%m%dT%H%M%S.%fZ"),
            # GX hands batch_spec to the page template: templates/gx/page.j2 shows `failed` on top.
            "batch_spec": {"data_asset_name": source, "record": record or GATE_SUITES.get(suite, suite), "run_date": run_date.isoformat(),
                           "combined_from": "every batch of the source validated in the Beam graph (invrecon.transforms.validate)"
                           if record else "the launcher, from the run's counts and earlier runs (invrecon.pipelines.quality_gate)",
                           "failed": failed},
        }
        out.append((source, suite, record, ExpectationSuiteValidationResult(
            success=ok == len(results), results=results, suite_name=suite, suite_parameters=params, meta=meta,
            statistics={"evaluated_expectations": len(results), "successful_expectations": ok,
                        "unsuccessful_expectations": len(results) - ok, "success_percent": 100.0 * ok / len(results) if results else None},
        )))
    return out


def _suites(rows: Sequence[dict], gate) -> list:
    """The GX suites the run's pages link to: the plan's documents and the launcher's checks."""
    seen: dict[str, object] = {}
    added: set[tuple[str, str, str]] = set()
    for (_, name), (_, doc) in _suite_docs(gate).items():
        if name not in seen:
            suite = gx.ExpectationSuite(name=name, notes=(doc.get("meta") or {}).get("notes"))
            for exp in doc["expectations"]:
                suite.add_expectation_configuration(_suite_config(exp))
            seen[name] = suite
    for row in rows:
        if row["suite"] in GATE_SUITES:
            suite = seen.setdefault(row["suite"], gx.ExpectationSuite(
                name=row["suite"], notes=f"invrecon's {GATE_SUITES[row['suite']]}, decided on the launcher (pipelines.quality_gate)"))
            config = _gate_config(row)
            key = (row["suite"], config.type, json.dumps(config.kwargs, sort_keys=True))
            if key not in added:
                added.add(key)
                suite.add_expectation_configuration(config)
    return list(seen.values())


def _site_config(site_dir: pathlib.Path) -> dict:
    view = {"module_name": __name__, "class_name": "OfflinePageView"}
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "site_section_builders": {"expectations": {"view": view}, "validations": {"view": view}, "profiling": "None"},
    }


def render_run(rows: Sequence[dict], gate, *, run_id: str, run_date: dt.date, run_time: dt.datetime, root: str | os.PathLike) -> tuple[pathlib.Path, list[Page]]:
    """Render the run's GX pages into a scratch GX project under `root`.

    Returns the site folder and the pages written in it (validation pages and result JSON per
    (source, suite), one page per suite).

    Raises:
      RuntimeError: GX did not write a page it was asked for (GX logs rendering errors instead of
        raising them).
    """
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    root = pathlib.Path(root)
    site_dir = root / "site"
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.add_data_docs_site(site_name=SITE, site_config=_site_config(site_dir))
    keys: list = []
    for suite in _suites(rows, gate):
        context.suites.add(suite)
        keys.append(ExpectationSuiteIdentifier(name=suite.name))
    store_dir = pathlib.Path(context.root_directory) / "uncommitted" / "validations"
    pages: list[Page] = []
    for source, suite, _, result in validation_results(rows, gate, run_id=run_id, run_date=run_date, run_time=run_time):
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=suite), RunIdentifier(run_name=run_id, run_time=run_time), source)
        context.validation_results_store.set(key, result)
        keys.append(key)
        rel = "/".join(key.to_tuple())
        pages.append(Page(source, suite, "validation", site_dir / "validations" / f"{rel}.html", f"validations/{rel}.html"))
        pages.append(Page(source, suite, "result", store_dir / f"{rel}.json", f"results/{rel}.json"))
    context.build_data_docs(site_names=[SITE], resource_identifiers=keys, build_index=False)
    for key in keys:
        if isinstance(key, ExpectationSuiteIdentifier):
            rel = "/".join(key.to_tuple())
            pages.append(Page(None, key.name, "suite", site_dir / "expectations" / f"{rel}.html", f"expectations/{rel}.html"))
    missing = [p.path for p in pages if not p.local.is_file()]
    if missing:
        raise RuntimeError(f"Great Expectations did not render {', '.join(missing)} (see its log for the error)")
    return site_dir, pages
