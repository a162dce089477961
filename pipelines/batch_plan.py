"""Plan a batch run date: its input files and checksums, run id, cut-off, gate and history.

Also the checks made before any graph runs (`invrecon batch` and `invrecon check` share them):
the config with its crosswalks and masters, the sources with no input file, and whether the date
is already published from the same inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import alerts as alert_rules
from invrecon.pipelines import quality_gate
from invrecon.pipelines.batch import DEFAULT_BUCKETS, BatchJob
from invrecon.pipelines.config import Config, load_config
from invrecon.pipelines.publish import Layout, latest_commits, live_files, live_urls, new_attempt
from invrecon.pipelines.quality_gate import GateHistory, load_history
from invrecon.pipelines.settle import History
from invrecon.transforms.canonical import file_sha256, load_items, shared_crosswalks
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.reconcile.classify import Tolerance

__all__ = ["cutoff_for", "load_checked_config", "missing_messages", "missing_sources", "plan_job", "published_run"]


def _expand_inputs(cfg: Config, run_date: dt.date) -> list[tuple[SourceSpec, list[dict]]]:
    out = []
    for s in cfg.sources:
        pattern = s.path.replace("{run_date}", run_date.isoformat())
        fs, _, _ = fsspec.get_fs_token_paths(pattern)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        matches = sorted(fs.glob(pattern)) if any(c in pattern for c in "*?[") else ([pattern] if fs.exists(pattern) else [])
        files = []
        for m in matches:
            if fs.isdir(m):
                continue
            uri = m if protocol in ("file", "local") else f"{protocol}://{m}"
            files.append({"source": s.name, "uri": uri, "size": int(fs.size(m)), "sha256": file_sha256(fs, m)})
        m = s.mapping
        spec = SourceSpec(
            name=s.name, kind=s.kind, system=s.system, format=s.format,
            columns=tuple(m.columns.items()) if m else (),
            sku_id_type=m.sku_id_type if m else "sku",
            location_system=m.location_system if m else None,
            qualifiers=tuple(s.qualifiers.items()), timezone=cfg.timezone,
            cutoff=cutoff_for(run_date, cfg.timezone),
            future_event_skew_hours=cfg.quality.future_event_skew_hours,
        )
        out.append((spec, files))
    return out


def cutoff_for(run_date: dt.date, timezone: str) -> dt.datetime:
    """D 23:59:59.999 in the config's time zone, as UTC."""
    local = dt.datetime.combine(run_date, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
    return local.astimezone(dt.UTC)


def _history_for(output: str, run_date: dt.date, history: GateHistory, commits: pa.Table) -> History:
    """The published files this run's aging and alerts read (from the commits: metadata only)."""
    runs = history.runs.filter(pl.col("status") == "succeeded") if history.runs.height else history.runs
    dates = tuple(sorted(set(runs["run_date"].to_list()))) if runs.height else ()
    live = live_files(commits)
    layout = Layout(output)
    disc = tuple(layout.url(f) for (t, _, owner), files in sorted(live.items()) if t == "discrepancies" and owner in dates for f in files)
    later = tuple(
        (owner, tuple(layout.url(f) for f in files))
        for (t, _, owner), files in sorted(live.items()) if t == "alerts" and owner in dates and owner > run_date
    )
    run_ids = tuple((d, r) for d, r in runs.select("run_date", "run_id").iter_rows() if d > run_date) if runs.height else ()
    return History(run_dates=dates, discrepancies=disc, later_alerts=later, later_run_ids=run_ids)


def plan_job(cfg: Config, run_date: dt.date, *, output: str, buckets: int = DEFAULT_BUCKETS) -> tuple[BatchJob, list[dict]]:
    """Resolve the run: input files with checksums, run id, attempt, staging folder, cut-off, gate."""
    sources = _expand_inputs(cfg, run_date)
    inputs = [f for _, files in sources for f in files]
    digest = hashlib.sha256(cfg.sha256.encode())
    for f in sorted(inputs, key=lambda f: f["uri"]):
        digest.update(f"{f['source']}\0{f['uri'].rsplit('/', 1)[-1]}\0{f['sha256']}\n".encode())
    run_id = f"{run_date.isoformat()}-{digest.hexdigest()[:12]}"
    cutoff = cutoff_for(run_date, cfg.timezone)
    history = load_history(output, run_date)
    attempt = new_attempt()
    job = BatchJob(
        run_id=run_id,
        run_date=run_date,
        cutoff=cutoff,
        record_system=cfg.record_system,
        sku_crosswalk=cfg.sku_crosswalk,
        location_crosswalk=cfg.location_crosswalk,
        items=cfg.items,
        output=output,
        attempt=attempt,
        staging=Layout(output).staging(run_date, attempt),
        sources=tuple((spec, tuple(f["uri"] for f in files)) for spec, files in sources),
        tolerances=tuple(Tolerance(match=tuple(sorted(t.match.items())), abs=t.abs, pct=t.pct) for t in cfg.tolerances),
        gate=quality_gate.plan(cfg=cfg, sources=[spec for spec, _ in sources], run_date=run_date, cutoff=cutoff, history=history),
        thresholds=alert_rules.load_thresholds(cfg),
        history=_history_for(output, run_date, history, latest_commits(output)),
        buckets=buckets,
    )
    return job, inputs


def published_run(output: str, run_id: str, run_date: dt.date) -> bool:
    """Whether run `run_id` is the succeeded run the commit log holds for `run_date`.

    The run id is the run date plus a hash of the config and every input file, so this says
    "this date is already published from exactly these inputs". Reads one small file.
    """
    for url in live_urls(output, "runs", owner=run_date):
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            rows = pq.read_table(f, columns=["run_id", "status"]).to_pylist()
        if any(r["run_id"] == run_id and r["status"] == "succeeded" for r in rows):
            return True
    return False


def missing_sources(job: BatchJob, allow_missing: str = "") -> list[str]:
    """The sources with no input file for the job's run date, but those `allow_missing` names
    (comma-separated, or `all`)."""
    allowed = {s.strip() for s in allow_missing.split(",") if s.strip()}
    return [spec.name for spec, files in job.sources if not files and spec.name not in allowed and "all" not in allowed]


def missing_messages(cfg: Config, names: list[str], run_date: dt.date, *, prog: str = "invrecon batch") -> list[str]:
    """The lines that say which sources have no input files for `run_date` (exit 4)."""
    lines = [f"{prog}: source {name}: no input files match {cfg.source(name).path.replace('{run_date}', run_date.isoformat())}"
             for name in names]
    return lines + [f"{prog}: inputs missing for the run date (use --allow-missing SOURCE to run without them)"]


def load_checked_config(uri: str) -> Config:
    """The config with its mappings and alert thresholds (`load_config`), both crosswalks and the
    items master checked, before anything runs (`invrecon check` does the same).

    Raises:
      ConfigError, CrosswalkError: naming the file and the key path or line (exit 2).
    """
    cfg = load_config(uri)
    shared_crosswalks(cfg.sku_crosswalk, cfg.location_crosswalk)  # fail fast, exit 2 (and loaded once in-process)
    load_items(cfg.items)
    return cfg
