"""Replay throughput of `invrecon stream` (events/s on one core, de-duplication on).

Writes a JSON Lines day of store events on the committed world's ids (4% re-delivered
duplicates, 1% malformed) and replays it through the whole stream graph (block-wise line
reading with the bus clock, columnar decode and canonicalize, bucketed de-dup in state,
lateness gate, running position, windowed changes, Parquet files) on the in-process FnApiRunner
with one worker, graph construction included.

One core means one: every measured run is a child process pinned to a single CPU
(`sched_setaffinity` before Python starts, so polars' thread pool has one thread too). Each size
runs `REPEATS` times on a shared machine; the median is the figure, the best and worst show the
spread. A replay has a fixed cost (building the graph, starting its stages: `replay_fixed_s`, a
replay of 2,000 events); the goal (100k events/s) is for the sustained rate, `replay_1m_*`.
The read-only, decode+canonicalize-only and per-line parse rates (the batch's own kernels,
outside Beam) show where the time goes.

Run:  python -m bench --only stream [--quick]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

WORLD = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "world"
DUPLICATE_SHARE = 0.04
MALFORMED_SHARE = 0.01
GOAL_EVENTS_PER_S = 100_000
REPEATS = 3


def write_events(path: pathlib.Path, n: int, *, seed: int = 1) -> int:
    """Write n lines of events (in publish order) and return the count."""
    rng = random.Random(seed)
    items = [f"5000{i:02d}" for i in range(40)]
    stores = ["0001", "0002", "0003", "0004", "0005"]
    types = ["sale"] * 8 + ["return", "adjustment"]
    start = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    lines, last = [], None
    for k in range(n):
        r = rng.random()
        if last is not None and r < DUPLICATE_SHARE:
            lines.append(last)
            continue
        if r < DUPLICATE_SHARE + MALFORMED_SHARE:
            lines.append('{"event_id": "BROKEN", "occurred_at": ')
            continue
        when = (start + dt.timedelta(seconds=k * 57_600 / n)).isoformat()
        et = rng.choice(types)
        last = json.dumps({
            "event_id": f"B-{k:08d}", "event_type": et, "occurred_at": when, "system": "store",
            "location": rng.choice(stores), "item": {"id_type": "store_item", "id": rng.choice(items)},
            "qty": rng.randint(1, 3) * (-1 if et == "adjustment" and rng.random() < 0.5 else 1), "uom": "EA",
            "reference": None, "published_at": when,
        })
        lines.append(last)
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


# --- measured in a pinned child process ------------------------------------------------------


def _replay(events: str, out: str) -> dict:
    """Child: one replay; wall seconds from graph construction to the last file written."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from invrecon.pipelines import stock_stream
    from invrecon.pipelines.config import load_config

    cfg = load_config(str(WORLD / "config.yaml"))
    job = stock_stream.plan_job(cfg, events=events, output=out, seed=False)
    t0 = time.perf_counter()
    with beam.Pipeline(runner=stock_stream.local_runner(), options=PipelineOptions(["--direct_num_workers", "1"])) as p:
        stock_stream.build(p, job)
    return {"seconds": time.perf_counter() - t0}


def _kernels(events: str) -> dict:
    """Child: the kernels outside Beam (read + bus clock, decode + canonicalize, per-line parse)."""
    from invrecon.transforms.canonical import load_crosswalks
    from invrecon.transforms.readers.common import SourceSpec
    from invrecon.transforms.stream import canonicalize_chunk, parse_raw_event, read_event_chunks, read_event_lines

    xw = load_crosswalks(str(WORLD / "crosswalk" / "sku.csv"), str(WORLD / "crosswalk" / "location.csv"))
    spec = SourceSpec(name="bench", kind="events", system=None, timezone="UTC")
    t0 = time.perf_counter()
    chunks = list(read_event_chunks(events, timezone="UTC"))
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in chunks:
        canonicalize_chunk(c, spec=spec, crosswalks=xw, run_id="bench")
    canon_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in read_event_lines(events, timezone="UTC"):
        parse_raw_event(r, timezone="UTC", source="bench")
    return {"read_s": read_s, "canon_s": canon_s, "parse_s": time.perf_counter() - t0}


def _pinned(task: str, *args: str) -> dict:
    """Run `task` in a child process pinned to one CPU; return the JSON it prints."""
    cpu = min(os.sched_getaffinity(0))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_stream", task, *args], capture_output=True, text=True, check=False,
        cwd=WORLD.parents[1], preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(tmp: pathlib.Path, n: int, label: str) -> dict:
    path = tmp / f"events_{n}.jsonl"
    lines = write_events(path, n)
    walls = [_pinned("replay", f"file://{path}", str(tmp / f"out_{label}_{k}"))["seconds"] for k in range(REPEATS)]
    path.unlink()
    median = statistics.median(walls)
    return {
        f"{label}_events": lines,
        f"{label}_seconds": round(median, 2),
        f"{label}_events_per_s": round(lines / median),
        f"{label}_events_per_s_best_worst": f"{round(lines / min(walls))} / {round(lines / max(walls))}",
    }


def run(*, quick: bool) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="invrecon-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        small = tmp / "events_2k.jsonl"
        write_events(small, 2_000)
        fixed = statistics.median(_pinned("replay", f"file://{small}", str(tmp / f"out_2k_{k}"))["seconds"] for k in range(REPEATS))
        n = 20_000 if quick else 200_000
        figures: dict[str, float | int | str] = {
            "runner": "FnApiRunner, 1 worker, pinned to 1 CPU, de-dup on", "repeats": REPEATS, "goal_events_per_s": GOAL_EVENTS_PER_S,
            "replay_fixed_s": round(fixed, 2),
        }
        figures.update(_rate(tmp, n, "replay_20k" if quick else "replay_200k"))
        if not quick:  # the sustained rate, which the goal is about: the start-up weighs little at 1M
            figures.update(_rate(tmp, 1_000_000, "replay_1m"))
            figures["goal_met_at_1m"] = figures["replay_1m_events_per_s"] >= GOAL_EVENTS_PER_S
        path = tmp / "events_kernels.jsonl"
        lines = write_events(path, n)
        k = _pinned("kernels", f"file://{path}")
        figures.update({
            "read_and_clock_only_events_per_s": round(lines / k["read_s"]),
            "decode_canonicalize_only_events_per_s": round(lines / k["canon_s"]),
            "per_line_parse_events_per_s": round(lines / k["parse_s"]),
        })
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("replay", "kernels"):
        result = _replay(*sys.argv[2:]) if sys.argv[1] == "replay" else _kernels(*sys.argv[2:])
        print(json.dumps(result))
    else:
        for key, value in run(quick="--quick" in sys.argv).items():
            print(f"{key:<40} {value}")
