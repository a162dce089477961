"""Publishing cost over a month of runs: does the 30th run publish as fast as the first?

DESIGN.md §2: publishing a run costs O(that run), never O(history). A ~128k-key world of 30
consecutive run dates (`invrecon fixtures --days 30 --skus 2000 --locations 64 --seed 1`) is run
date by date, in order, into one output folder (one warehouse that grows), each `invrecon batch`
a child process. The figure is the `publish` stage's own time, from the batch's JSON stage lines
(`"stage": "publish"`, `"duration_s"`), of the first and the 30th run and their ratio; the goal
is the 30th within 1.5x of the first. While the batch logs no stage lines, `publish_s` is null
and `finish_from_messages_s` (published-and-loaded minus reconciled, from its progress
messages) stands in, labelled as such.

Run:  python -m bench publish [--quick]
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import time

from bench._common import CACHE, RUN_DATE, invrecon, log_marks, machine, run_measured, stage_lines, stage_totals, world

DAYS, SKUS, LOCATIONS = 30, 2000, 64
QUICK = (5, 200, 16)
GOAL_RATIO = 1.5
STAGE = "publish"


def run(*, quick: bool) -> dict:
    days, skus, locations = QUICK if quick else (DAYS, SKUS, LOCATIONS)
    path, made = world(skus, locations, days=days)
    runs = CACHE / "runs" / f"publish_{skus}x{locations}_d{days}"
    shutil.rmtree(runs, ignore_errors=True)
    out = runs / "out"
    end = dt.date.fromisoformat(RUN_DATE)
    dates = [end - dt.timedelta(days=days - 1 - k) for k in range(days)]
    per_run = []
    for k, d in enumerate(dates, start=1):
        m = run_measured(invrecon("batch", "--config", str(path / "config.yaml"), "--run-date", d.isoformat(), "--output", str(out), "--quiet"),
                         log_dir=runs / "logs", name=f"batch_{d}")
        totals = stage_totals(stage_lines(m.stderr))
        marks = log_marks(m.stderr)
        per_run.append({
            "run_date": d.isoformat(), "exit_code": m.returncode, "wall_s": round(m.wall_s, 2),
            "publish_s": totals.get(STAGE), "stages": totals or None, "finish_from_messages_s": marks.get("publish_load"),
        })
        print(f"  publish bench: run {k}/{days} {d} exit {m.returncode} in {m.wall_s:.1f} s, publish "
              f"{totals.get(STAGE)} s (messages: finish {marks.get('publish_load')} s)", file=sys.stderr, flush=True)
        if m.returncode != 0:
            per_run[-1]["error"] = m.tail()
    first, last = per_run[0], per_run[-1]
    figures: dict = {
        **machine(), "world": made["flags"], "world_generated": not made.get("cached"), "runs": len(per_run),
        "exit_codes_nonzero": [r["run_date"] for r in per_run if r["exit_code"] != 0],
        "stage_lines_found": any(r["stages"] for r in per_run),
        "publish_first_s": first["publish_s"], "publish_last_s": last["publish_s"],
        "goal_ratio": GOAL_RATIO,
    }
    if first["publish_s"] and last["publish_s"] is not None:
        figures["publish_ratio_last_to_first"] = round(last["publish_s"] / first["publish_s"], 2)
        figures["goal_met"] = figures["publish_ratio_last_to_first"] <= GOAL_RATIO
    else:
        figures["publish_ratio_last_to_first"] = None
        figures["goal_met"] = None  # no `publish` stage lines: nothing to judge by
    f1, f30 = first["finish_from_messages_s"], last["finish_from_messages_s"]
    figures["finish_from_messages_first_s"], figures["finish_from_messages_last_s"] = f1, f30
    figures["finish_from_messages_ratio"] = round(f30 / f1, 2) if f1 and f30 is not None else None
    figures["batch_wall_first_s"], figures["batch_wall_last_s"] = first["wall_s"], last["wall_s"]
    figures.update(_medians(per_run))
    figures.update(_log_reads(out))
    figures.update(_publish_only(days, runs / "publish-only"))
    figures["per_run"] = per_run
    shutil.rmtree(out, ignore_errors=True)
    return figures


def _medians(per_run: list[dict], k: int = 3) -> dict:
    """Median publish time of the first k and the last k runs: one 10 ms figure is at the mercy of the load."""
    first = [r["publish_s"] for r in per_run[:k] if r["publish_s"] is not None]
    last = [r["publish_s"] for r in per_run[-k:] if r["publish_s"] is not None]
    if not first or not last:
        return {"publish_median_first3_s": None, "publish_median_last3_s": None, "publish_median_ratio": None}
    m1, m2 = statistics.median(first), statistics.median(last)
    return {"publish_median_first3_s": m1, "publish_median_last3_s": m2, "publish_median_ratio": round(m2 / m1, 2) if m1 else None}


def _log_reads(out, repeat: int = 20) -> dict:
    """What the launcher reads of the commit log after the last run: the checkpoint plus newer commits
    (`latest_commits`, what publishing uses) against the whole log (`read_commits`), best of `repeat`."""
    from invrecon.pipelines import publish

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(str(out))
            times.append(time.perf_counter() - t0)
        return round(min(times), 5)

    return {"latest_commits_s": best(publish.latest_commits), "read_commits_whole_log_s": best(publish.read_commits),
            "commit_files": len(list((out / "_commits").glob("*.parquet")))}


def _publish_only(days: int, folder, repeat: int = 3) -> dict:
    """`publish` alone, in this process, over `days` dates of one small staged file per table (and
    two movements partitions), `repeat` series: the median of each date over the series, without a
    batch (and the machine's other work) around each 20 ms figure."""
    from invrecon.pipelines import publish
    from invrecon.schemas.tables import PARTITION_COLUMN

    tables = tuple(PARTITION_COLUMN)
    first = dt.date.fromisoformat(RUN_DATE) - dt.timedelta(days=days - 1)
    series = []
    for r in range(repeat):
        out = folder / f"out-{r}"
        shutil.rmtree(out, ignore_errors=True)
        times = []
        for k in range(days):
            d = first + dt.timedelta(days=k)
            attempt = publish.new_attempt()
            staging = publish.Layout(str(out)).staging(d, attempt)
            _stage_one_file_per_table(staging, tables, d)
            t0 = time.perf_counter()
            publish.publish(output=str(out), staging=staging, tables=tables, run_id=f"{d}-bench", run_date=d, attempt=attempt)
            times.append(time.perf_counter() - t0)
        series.append(times)
        shutil.rmtree(out, ignore_errors=True)
    per_date = [statistics.median(s[k] for s in series) for k in range(days)]
    m1, m2 = statistics.median(per_date[:3]), statistics.median(per_date[-3:])
    return {"publish_only_first3_s": round(m1, 4), "publish_only_last3_s": round(m2, 4),
            "publish_only_ratio": round(m2 / m1, 2), "publish_only_per_date_s": [round(t, 4) for t in per_date]}


def _stage_one_file_per_table(staging: str, tables: tuple[str, ...], d: dt.date) -> None:
    import pathlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    for t in tables:
        folder = pathlib.Path(staging) / t
        folder.mkdir(parents=True)
        if t == "movements":  # today's events and a late one of yesterday: two event-date partitions
            for e in (d, d - dt.timedelta(days=1)):
                pq.write_table(pa.table({"x": [1]}), folder / f"event_date={e}--part-0.parquet")
        else:
            pq.write_table(pa.table({"x": [1]}), folder / "part-0.parquet")


def report(figures: dict) -> str:
    def s(v) -> str:
        return "none" if v is None else f"{v:.2f} s"

    lines = [f"publish bench: {figures['runs']} consecutive run dates of {figures['world']} into one output "
             f"({figures['cores']} cores, load {figures['load_avg_1m_at_start']} at start)"]
    if figures["stage_lines_found"]:
        lines.append(f"  publish stage: run 1 {s(figures['publish_first_s'])}, run {figures['runs']} {s(figures['publish_last_s'])}, "
                     f"ratio {figures['publish_ratio_last_to_first']} (goal <= {figures['goal_ratio']}: "
                     f"{'met' if figures['goal_met'] else 'NOT met'})")
    else:
        lines.append("  publish stage: none (no JSON line with `stage: publish` and `duration_s` on the batch's stderr)")
    if figures.get("publish_median_ratio") is not None:
        lines.append(f"  publish stage, median of the first 3 runs {s(figures['publish_median_first3_s'])}, of the last 3 "
                     f"{s(figures['publish_median_last3_s'])}: ratio {figures['publish_median_ratio']}")
    if figures.get("publish_only_ratio") is not None:
        lines.append(f"  publish alone, in-process, median of 3 series: first 3 dates {s(figures['publish_only_first3_s'])}, "
                     f"last 3 {s(figures['publish_only_last3_s'])}: ratio {figures['publish_only_ratio']}")
    if figures.get("latest_commits_s") is not None:
        lines.append(f"  reading the commit log after {figures['commit_files']} commits: checkpoint + newer {s(figures['latest_commits_s'])}, "
                     f"whole log {s(figures['read_commits_whole_log_s'])} (best of 20)")
    lines.append(f"  stand-in from progress messages (publish + DuckDB load): run 1 {s(figures['finish_from_messages_first_s'])}, "
                 f"run {figures['runs']} {s(figures['finish_from_messages_last_s'])}, ratio {figures['finish_from_messages_ratio']}")
    lines.append(f"  batch wall: run 1 {s(figures['batch_wall_first_s'])}, run {figures['runs']} {s(figures['batch_wall_last_s'])}")
    if figures["exit_codes_nonzero"]:
        lines.append(f"  runs that failed: {', '.join(figures['exit_codes_nonzero'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run(quick="--quick" in sys.argv)))
