"""The run's Great Expectations Data Docs, built by the launcher after the gate decision.

Input: the run's combined data-quality rows (one per source, suite and expectation, from
`quality_gate.decide`: the suites' results combined over every batch the graph validated, the
source-level checks and the history anomalies), the gate plan (suites and `$PARAMETER` values)
and the run's status. Nothing here grows with the records: a page per (source, suite).

Output, under `<output>/data_docs/` (any fsspec URL; GX renders into a local scratch folder,
then the files are copied):

    index.html                                              invrecon's static index of the kept runs
    validations/<suite>/<run_id>/<run_time>/<source>.html   GX validation result pages
    results/<suite>/<run_id>/<run_time>/<source>.json       the GX ExpectationSuiteValidationResult
    expectations/<suite>.html                               GX suite pages (the latest definition)
    runs/<run_date>.json                                    what each kept run wrote (for the index)

Every page reads offline: no remote script, stylesheet, font or image (see `pipelines.gx_docs`).
The history is bounded: the last `quality.data_docs_runs` runs (by when they ran) keep their
pages, one run per run date (a re-run of a date replaces that date's pages), older ones are
deleted. Building costs a few hundred milliseconds, whatever the number of records.

Example (what `invrecon batch` does after publishing):

    index = build(output="out", rows=dq_rows, gate=job.gate, run_id=job.run_id, run_date=job.run_date,
                  status="succeeded", message="", keep_runs=30)
    # index == "out/data_docs/index.html"
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pathlib
import tempfile
import uuid
from collections.abc import Sequence

import fsspec
import jinja2
from fsspec.implementations.local import LocalFileSystem

from invrecon.pipelines.publish import Layout
from invrecon.pipelines.quality_gate import stops_run
from invrecon.transforms.quality import ROW_LEVEL_PREFIXES

__all__ = ["DOCS_DIR", "anchor", "build", "index_url", "link_from", "render_index"]

log = logging.getLogger("invrecon.data_docs")

DOCS_DIR = "data_docs"
TEMPLATES = pathlib.Path(__file__).with_name("templates")
# Order of the suites on a run's table: the record suites first, then the launcher's own checks.
_LAST = {"source": 1, "history": 2}


def index_url(output: str) -> str:
    """The Data Docs index of an output folder (a path or an fsspec URL, as `output` is)."""
    return f"{output.rstrip('/')}/{DOCS_DIR}/index.html"


def anchor(run_date: dt.date | str) -> str:
    """The index's anchor of a run date: `index.html#run-2026-11-30`."""
    return f"run-{run_date if isinstance(run_date, str) else run_date.isoformat()}"


def link_from(folder: str, *, output: str, run_date: dt.date) -> str | None:
    """How a page written in `folder` links to the run's entry in the Data Docs of `output`.

    A relative link when both are on the local disk (the pair can be moved or zipped together),
    the index's URL otherwise; None when `output` has no Data Docs.

    Example:
      >>> import tempfile, pathlib
      >>> out = pathlib.Path(tempfile.mkdtemp()); (out / "data_docs").mkdir(); _ = (out / "data_docs" / "index.html").write_text("")
      >>> link_from(str(out / "reports" / "2026-11-30"), output=str(out), run_date=dt.date(2026, 11, 30))
      '../../data_docs/index.html#run-2026-11-30'
    """
    index = index_url(output)
    fs, path = fsspec.core.url_to_fs(index)
    if not fs.exists(path):
        return None
    target = f"#{anchor(run_date)}"
    if _is_local(fs) and "://" not in folder.removeprefix("file://"):
        return pathlib.Path(os.path.relpath(path, os.path.abspath(folder.removeprefix("file://")))).as_posix() + target
    return index + target


def _is_local(fs) -> bool:
    return isinstance(fs, LocalFileSystem)


def _write(fs, path: str, data: bytes) -> None:
    """Replace one file; on a local disk through a rename, so a reader never sees half of it."""
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if not _is_local(fs):
        fs.pipe_file(path, data)  # one PUT: object stores replace a key whole
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(tmp, data)
    os.replace(tmp, path)


def _rm(fs, paths: Sequence[str]) -> None:
    for path in paths:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
    if _is_local(fs):  # prune the folders GX's layout leaves empty
        for folder in sorted({p.rsplit("/", 1)[0] for p in paths}, key=len, reverse=True):
            while folder.rsplit("/", 1)[-1] not in (DOCS_DIR, "") and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
                folder = folder.rsplit("/", 1)[0]


def _page_entry(source: str, suite: str, record: str, rows: list[dict], page: str, result: str) -> dict:
    failed = [
        {"expectation": r["expectation"], "severity": r["severity"], "unexpected_count": r["unexpected_count"],
         "element_count": r["element_count"], "stops_run": stops_run(r),
         "row_level": suite not in ("source", "history") and r["expectation"].startswith(ROW_LEVEL_PREFIXES)}
        for r in rows if not r["success"]
    ]
    return {"source": source, "suite": suite, "record": record, "page": page, "result": result,
            "evaluated": len(rows), "success": not failed, "failed": failed}


def _manifest(pages, rows: Sequence[dict], gate, *, run_id: str, run_date: dt.date, status: str, message: str, built: dt.datetime) -> dict:
    records = {(src, doc["name"]): record for record, by_source in gate.suites.items() for src, docs in by_source.items() for doc in docs}
    by_key: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["source"], r["suite"]), []).append(r)
    paths = {(p.source, p.suite, p.kind): p.path for p in pages}
    entries = [
        _page_entry(src, suite, records.get((src, suite), ""), group, paths[(src, suite, "validation")], paths.get((src, suite, "result"), ""))
        for (src, suite), group in by_key.items()
    ]
    entries.sort(key=lambda e: (e["source"], _LAST.get(e["suite"], 0), e["suite"]))
    return {
        "run_id": run_id, "run_date": run_date.isoformat(), "status": status, "message": message or "",
        "built": built.isoformat(), "pages": entries,
        "suites": {p.suite: p.path for p in pages if p.kind == "suite"},
        "files": sorted(p.path for p in pages if p.kind != "suite"),
    }


def _read_manifests(fs, root: str) -> dict[str, dict]:
    try:
        paths = sorted(fs.glob(f"{root}/runs/*.json"))
    except FileNotFoundError:
        return {}
    out = {}
    for path, data in (fs.cat(paths) if paths else {}).items():
        try:
            m = json.loads(data)
            out[m["run_date"]] = m
        except (ValueError, KeyError):
            log.warning("data docs: %s is not a run manifest; ignored", path)
    return out


def render_index(runs: Sequence[dict], *, keep_runs: int, generated: dt.datetime | None = None) -> str:
    """The static index page (no script, nothing fetched) of the kept runs' manifests."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    runs = sorted(runs, key=lambda m: m["run_date"], reverse=True)
    suites: dict[str, str] = {}
    for m in sorted(runs, key=lambda m: m["built"]):
        suites.update(m["suites"])
    return env.get_template("data_docs_index.html.j2").render(
        runs=runs, suites=dict(sorted(suites.items())), keep_runs=keep_runs, anchor=anchor,
        generated=(generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )


def build(*, output: str, rows: Sequence[dict], gate, run_id: str, run_date: dt.date, status: str, message: str,
          keep_runs: int, now: dt.datetime | None = None) -> str:
    """Build this run's Data Docs pages, keep the last `keep_runs` runs, rewrite the index.

    Args:
      output: the run's output folder (path or fsspec URL); the docs go to `<output>/data_docs/`.
      rows: the run's dq_results rows (`quality_gate.decide`).
      gate: the run's `GatePlan` (which suites each source ran, with which parameters).
      run_id, run_date, status, message: the run, as its `runs` row says.
      keep_runs: how many runs keep their pages (`quality.data_docs_runs`, >= 1).
      now: when the run's pages were built (default: now).

    Returns:
      The index's path or URL (`index_url(output)`).

    Raises:
      ValueError: `keep_runs` < 1.
    """
    if keep_runs < 1:
        raise ValueError("`keep_runs` must be >= 1")
    from invrecon.pipelines import gx_docs  # Great Expectations: imported only when docs are built

    built = now or dt.datetime.now(dt.UTC)
    layout = Layout(output)
    fs, root = layout.fs, f"{layout.root}/{DOCS_DIR}"
    with tempfile.TemporaryDirectory(prefix="invrecon-data-docs-") as tmp:
        _, pages = gx_docs.render_run(rows, gate, run_id=run_id, run_date=run_date, run_time=built, root=tmp)
        for folder in sorted({f"{root}/{p.path}".rsplit("/", 1)[0] for p in pages}):
            fs.makedirs(folder, exist_ok=True)
        fs.put([str(p.local) for p in pages], [f"{root}/{p.path}" for p in pages])
    manifest = _manifest(pages, rows, gate, run_id=run_id, run_date=run_date, status=status, message=message, built=built)
    others = _read_manifests(fs, root)
    replaced = others.pop(manifest["run_date"], None)
    ranked = sorted(others.values(), key=lambda m: m["built"], reverse=True)
    kept, dropped = [manifest, *ranked[: keep_runs - 1]], ranked[keep_runs - 1:]
    _write(fs, f"{root}/runs/{manifest['run_date']}.json", json.dumps(manifest, indent=1).encode())
    _rm(fs, [f"{root}/runs/{m['run_date']}.json" for m in dropped])
    _write(fs, f"{root}/index.html", render_index(kept, keep_runs=keep_runs, generated=built).encode())
    # Only now, with no index pointing at them, the replaced and dropped runs' files go.
    live = {f for m in kept for f in m["files"]} | {f for m in kept for f in m["suites"].values()}
    stale = {f for m in ([replaced] if replaced else []) + dropped for f in [*m["files"], *m["suites"].values()]} - live
    _rm(fs, [f"{root}/{f}" for f in sorted(stale)])
    log.info("data docs: %d page(s) of run %s, %d run(s) kept, %d dropped", len(manifest["pages"]), run_id, len(kept), len(dropped),
             extra={"run_id": run_id, "pages": len(manifest["pages"]), "runs_kept": len(kept)})
    return index_url(output)
