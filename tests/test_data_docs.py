"""Data Docs (issue 13 §5): built by the batch from the combined results, complete offline,
bounded history, linked from the summary and the report.

The pages are parsed, never grepped: every `<script>`, `<link>`, `<img>` (and any `url()` or
`@import` in a style) must be local, and each validation page's table must hold one status cell
per expectation the run evaluated, without a script to fill it.
"""

from __future__ import annotations

import datetime as dt
import doctest
import html.parser
import json
import pathlib
import re
import time
import urllib.parse

import fsspec
import pytest
import yaml

from invrecon.pipelines import data_docs
from invrecon.pipelines.quality_gate import GatePlan
from invrecon.pipelines.run_summary import RunResult, summary_text
from invrecon.transforms.quality import EXPECTATIONS_DIR, load_suite, suite_parameters
from tests.conftest import RUN_DATE, fail_the_erp_after_a_good_day, run_batch, warehouse

REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
CSS_REMOTE = re.compile(r"url\(\s*['\"]?\s*(https?:)?//|@import", re.I)


class Page(html.parser.HTMLParser):
    """What a page would fetch, where it links, and the status cells of its tables."""

    def __init__(self, text: str):
        super().__init__()
        self.fetches: list[tuple[str, str]] = []  # (tag, url) of everything a browser would load
        self.scripts = 0
        self.css: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.status_cells = {"ok": 0, "failed": 0}
        self._td = 0
        self._style = False
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if "style" in a:
            self.css.append(a["style"])
        if tag == "script":
            self.scripts += 1
            if a.get("src"):
                self.fetches.append((tag, a["src"]))
        elif tag == "link":
            self.fetches.append((tag, a.get("href", "")))
        elif tag in ("img", "iframe", "embed", "source", "audio", "video", "object"):
            self.fetches.append((tag, a.get("src") or a.get("data", "")))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "style":
            self._style = True
        elif tag == "td":
            self._td += 1
        elif tag == "i" and self._td:
            classes = a.get("class", "").split()
            if "fa-check-circle" in classes:
                self.status_cells["ok"] += 1
            elif "fa-times" in classes:
                self.status_cells["failed"] += 1

    def handle_endtag(self, tag):
        if tag == "style":
            self._style = False
        elif tag == "td":
            self._td -= 1

    def handle_data(self, data):
        (self.css if self._style else self.text).append(data)


def _page(path: pathlib.Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def _local_target(page: pathlib.Path, href: str) -> pathlib.Path | None:
    """The file a relative link of `page` points at (None for anchors within the page)."""
    url = urllib.parse.urlsplit(href)
    if url.scheme or not url.path:
        return None
    return (page.parent / urllib.parse.unquote(url.path)).resolve()


def _assert_offline(site: pathlib.Path) -> int:
    """Every page of `site` fetches nothing remote and links only to files that exist."""
    pages = sorted(site.rglob("*.html"))
    assert pages
    for path in pages:
        p = _page(path)
        assert p.scripts == 0, f"{path}: has a script"
        for tag, url in p.fetches:
            assert url and not REMOTE.match(url), f"{path}: <{tag}> fetches {url!r}"
            assert _local_target(path, url).exists(), f"{path}: <{tag}> {url!r} is not there"
        for css in p.css:
            assert not CSS_REMOTE.search(css), f"{path}: a style fetches something: {CSS_REMOTE.search(css).group(0)}"
        for href in p.links:
            target = _local_target(path, href)
            if target is not None:
                assert target.is_file(), f"{path}: a dead link {href!r}"
    return len(pages)


def _index_runs(site: pathlib.Path) -> dict[str, dict]:
    """run date -> its manifest, for the runs the index shows."""
    index = _page(site / "index.html")
    dates = sorted(i.removeprefix("run-") for i in index.ids if i.startswith("run-"))
    manifests = {m["run_date"]: m for m in (json.loads(f.read_text()) for f in (site / "runs").glob("*.json"))}
    assert sorted(manifests) == dates
    return manifests


# ----------------------------------------------------------------------------- the committed run


def test_the_committed_run_has_data_docs_listing_the_run_and_each_suite(committed_run):
    site = committed_run / "data_docs"
    runs = _index_runs(site)
    assert sorted(runs) == [RUN_DATE] and runs[RUN_DATE]["status"] == "succeeded"
    index = _page(site / "index.html")
    want = warehouse(committed_run).execute(
        "SELECT source, suite, count(*) FROM dq_results WHERE run_date = ? GROUP BY ALL ORDER BY ALL", [RUN_DATE]).fetchall()
    assert {s for _, s, _ in want} >= {"position", "movement", "in_transit", "store_counts", "source"}
    pages = {(p["source"], p["suite"]): p for p in runs[RUN_DATE]["pages"]}
    assert sorted((s, suite, p["evaluated"]) for (s, suite), p in pages.items()) == want
    for (source, suite), entry in pages.items():
        assert entry["page"] in index.links, (source, suite)
        page = _page(site / entry["page"])
        # GX's table, filled without bootstrap-table: one status cell per expectation evaluated
        assert sum(page.status_cells.values()) == entry["evaluated"], (source, suite)
        assert source in " ".join(page.text)
        assert json.loads((site / entry["result"]).read_text())["suite_name"] == suite
    suites = {s for _, s, _ in want}
    assert {f"expectations/{s}.html" for s in suites} <= set(index.links)
    assert (site / "expectations" / "position.html").is_file()


def test_no_data_docs_page_fetches_a_remote_script_or_style(committed_run):
    site = committed_run / "data_docs"
    assert _assert_offline(site) == len(list((site / "validations").rglob("*.html"))) + len(list((site / "expectations").glob("*.html"))) + 1
    for path in site.rglob("*.html"):
        assert "default-src 'none'" in path.read_text(encoding="utf-8"), path  # the browser fetches nothing either


def test_the_summary_prints_the_data_docs_index():
    result = RunResult(run_id="r", run_date=dt.date(2026, 11, 30), status="succeeded", output="s3://b/out", warehouse="w.duckdb",
                       counts=[], classes={}, value_at_stake=0.0, net_value=0.0, quarantined=0, alerts=0,
                       data_docs=data_docs.index_url("s3://b/out"))
    assert "data docs: s3://b/out/data_docs/index.html" in summary_text(result)
    assert "data docs" not in summary_text(RunResult(**{**result.__dict__, "data_docs": None}))


# ----------------------------------------------------------------------------- failed gate, re-runs


def test_a_failed_gate_shows_its_failing_expectation_and_reruns_stay_within_n(tmp_path, capsys):
    world, out = fail_the_erp_after_a_good_day(tmp_path)
    assert f"which expectation failed, and why: {out}/data_docs/index.html" in capsys.readouterr().err
    site = out / "data_docs"
    runs = _index_runs(site)
    assert {d: m["status"] for d, m in runs.items()} == {"2026-11-29": "succeeded", "2026-11-30": "dq_failed"}
    failed = runs["2026-11-30"]
    assert "erp_nightly" in failed["message"]
    source = next(p for p in failed["pages"] if (p["source"], p["suite"]) == ("erp_nightly", "source"))
    assert [(f["expectation"], f["stops_run"]) for f in source["failed"]] == [("expect_source_to_deliver_valid_records", True)]
    page = _page(site / source["page"])
    assert page.status_cells == {"ok": 0, "failed": 1}
    text = " ".join(" ".join(page.text).split())
    assert "expect_source_to_deliver_valid_records" in text and "stopped the run" in text and "0 valid of 0 read" in text
    assert re.search(r"Must deliver at least \d+ valid records \(its recent runs delivered a median of \d+", text), text
    index = _page(site / "index.html")
    assert source["page"] in index.links and "stopped the run" in " ".join(index.text)
    _assert_offline(site)

    # A re-run of the date with data_docs_runs: 1 replaces that date's pages and drops the older run's.
    cfg = yaml.safe_load((world / "config.yaml").read_text())
    cfg.setdefault("quality", {})["data_docs_runs"] = 1
    (world / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert run_batch(world / "config.yaml", "2026-11-30", output=out) == 3
    last = _index_runs(site)
    assert sorted(last) == ["2026-11-30"] and last["2026-11-30"]["built"] > runs["2026-11-30"]["built"]
    assert not any((site / f).exists() for m in runs.values() for f in m["files"])  # replaced and dropped pages are gone
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file() and p.parent.name != "expectations"}
    assert files == {"index.html", "runs/2026-11-30.json", *last["2026-11-30"]["files"]}
    _assert_offline(site)


# ----------------------------------------------------------------------------- the builder alone


def _gate() -> GatePlan:
    cutoff = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC)
    suite = load_suite(EXPECTATIONS_DIR / "position.json")
    params = suite_parameters(cutoff=cutoff, previous_rows=100, band=0.5, max_lag_hours=36)
    return GatePlan(suites={"positions": {"erp": [suite]}, "movements": {}, "in_transit_lines": {}}, params={"positions": {"erp": params}})


def _rows(run_id: str, run_date: dt.date, *, rows: int) -> list[dict]:
    base = {"run_id": run_id, "run_date": run_date, "source": "erp", "column": None, "unexpected_count": 0}
    ok = rows >= 50
    return [
        {**base, "suite": "position", "expectation": "expect_column_values_to_not_be_null(sku)", "column": "sku", "success": ok,
         "element_count": rows, "unexpected_count": 0 if ok else 3, "severity": "critical",
         "details": json.dumps({"unexpected_percent": 0.0 if ok else 30.0})},
        {**base, "suite": "position", "expectation": "expect_table_row_count_to_be_between", "success": ok,
         "element_count": rows, "severity": "critical", "details": json.dumps({"observed_value": rows})},
        {**base, "suite": "source", "expectation": "expect_source_to_deliver_valid_records", "success": True, "element_count": rows,
         "unexpected_count": 0, "severity": "critical", "details": json.dumps({"written": rows, "read": rows, "quarantined": 0, "floor": 1})},
        {**base, "suite": "history", "expectation": "metric_within_3_sigma(rows_read)", "success": ok, "element_count": 4,
         "severity": "warning", "details": json.dumps({"value": rows, "mean": 100.0, "std": 1.0, "runs": 4})},
    ]


def test_history_keeps_the_last_n_runs_on_any_fsspec_filesystem():
    output = f"memory://docs-{time.monotonic_ns()}/out"
    fs, root = fsspec.core.url_to_fs(f"{output}/data_docs")
    gate = _gate()
    t0 = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)
    dates = [dt.date(2026, 11, d) for d in (26, 27, 28, 29)]
    for i, day in enumerate(dates):  # four run dates, then a re-run of the second
        index = data_docs.build(output=output, rows=_rows(f"{day}-x", day, rows=100), gate=gate, run_id=f"{day}-x", run_date=day,
                                status="succeeded", message="", keep_runs=2, now=t0 + dt.timedelta(hours=i))
        assert index == f"{output}/data_docs/index.html"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.glob(f"{root}/runs/*.json")) == ["2026-11-28.json", "2026-11-29.json"]
    rerun = dt.date(2026, 11, 28)
    data_docs.build(output=output, rows=_rows("2026-11-28-y", rerun, rows=10), gate=gate, run_id="2026-11-28-y", run_date=rerun,
                    status="dq_failed", message="erp (positions): expect_table_row_count_to_be_between", keep_runs=2,
                    now=t0 + dt.timedelta(hours=9))
    manifests = {m["run_date"]: m for m in (json.loads(fs.cat_file(p)) for p in fs.glob(f"{root}/runs/*.json"))}
    assert {d: m["run_id"] for d, m in manifests.items()} == {"2026-11-28": "2026-11-28-y", "2026-11-29": "2026-11-29-x"}
    html = fs.cat_file(f"{root}/index.html").decode()
    assert 'id="run-2026-11-28"' in html and 'id="run-2026-11-29"' in html and "run-2026-11-27" not in html
    live = {f for m in manifests.values() for f in m["files"]}
    on_disk = {p.removeprefix(root.rstrip("/") + "/") for p in fs.find(root) if "/validations/" in p or "/results/" in p}
    assert on_disk == live  # the dropped runs' and the replaced run's pages are gone
    failed = next(p for p in manifests["2026-11-28"]["pages"] if p["suite"] == "position")
    assert [(f["expectation"], f["stops_run"], f["row_level"]) for f in failed["failed"]] == [
        ("expect_column_values_to_not_be_null(sku)", False, True), ("expect_table_row_count_to_be_between", True, False)]
    page = fs.cat_file(f"{root}/{failed['page']}").decode()
    assert "expect_table_row_count_to_be_between" in page and "stopped the run" in page
    assert "its 3 failing row(s) went to quarantine" in page
    assert "(3 of 10 rows)" in html and "(1 of" not in html  # row counts only where rows failed


def test_keep_runs_must_be_positive():
    with pytest.raises(ValueError, match="`keep_runs` must be >= 1"):
        data_docs.build(output="memory://x", rows=[], gate=_gate(), run_id="r", run_date=dt.date(2026, 11, 30),
                        status="succeeded", message="", keep_runs=0)


def test_a_page_links_the_run_in_the_data_docs_relatively_when_local(tmp_path):
    out = tmp_path / "out"
    assert data_docs.link_from(str(tmp_path / "r"), output=str(out), run_date=dt.date(2026, 11, 30)) is None  # no docs: no link
    (out / "data_docs").mkdir(parents=True)
    (out / "data_docs" / "index.html").write_text("")
    assert data_docs.link_from(str(out / "reports" / RUN_DATE), output=str(out), run_date=dt.date(2026, 11, 30)) == \
        "../../data_docs/index.html#run-2026-11-30"
    remote = f"memory://link-{time.monotonic_ns()}/out"
    fsspec.filesystem("memory").pipe_file(f"{remote.removeprefix('memory://')}/data_docs/index.html", b"")
    assert data_docs.link_from(str(tmp_path / "r"), output=remote, run_date=dt.date(2026, 11, 30)) == \
        f"{remote}/data_docs/index.html#run-2026-11-30"


def test_doc_examples():
    assert doctest.testmod(data_docs).failed == 0


def test_the_batch_builds_no_docs_when_told_and_never_fails_a_run_over_them(world_copy, tmp_path, caplog):
    from invrecon.pipelines import batch_finish, batch_plan
    from invrecon.pipelines.config import load_config

    cfg = load_config(str(world_copy / "config.yaml"))
    out = tmp_path / "out"
    job, _ = batch_plan.plan_job(cfg, dt.date.fromisoformat(RUN_DATE), output=str(out))
    assert batch_finish.run_data_docs(job, cfg, [{"source": "erp_nightly"}], status="succeeded", message="") is None  # a row it cannot read
    assert "data docs: could not build them" in caplog.text
    doc = yaml.safe_load((world_copy / "config.yaml").read_text())
    doc["quality"] = {"data_docs_runs": 0}
    (world_copy / "config.yaml").write_text(yaml.safe_dump(doc))
    off = load_config(str(world_copy / "config.yaml"))
    assert off.quality.data_docs_runs == 0
    assert batch_finish.run_data_docs(job, off, [], status="succeeded", message="") is None
    assert not (out / "data_docs" / "index.html").exists()
