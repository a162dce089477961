"""Replay throughput of `invrecon stream` (events/s, one core, de-duplication on).

Writes a JSON Lines day of store events on the committed world's ids (4% re-delivered
duplicates, 1% malformed), replays it through the whole stream graph (chunked read, columnar
decode and canonicalize, bucketed de-dup in state, lateness gate, running position, windowed
changes, Parquet files) on the in-process FnApiRunner with one worker, and reports events read
per second of wall time, graph construction included. The read-only and decode+canonicalize
rates (the batch's own kernels, outside Beam) show where the time goes; the per-line parse rate
is what a live message costs before it joins a batch. Not --quick, a 1M-event replay is timed
too (`replay_1m_*`).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import random
import tempfile
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import stock_stream
from pipelines.config import load_config
from transforms.canonical import load_crosswalks
from transforms.sources import SourceSpec
from transforms.stream import canonicalize_chunk, parse_raw_event, read_event_chunks, read_event_lines

WORLD = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "world"
DUPLICATE_SHARE = 0.04
MALFORMED_SHARE = 0.01


def write_events(path: pathlib.Path, n: int, *, seed: int = 1) -> int:
    """Write n lines of events (in publish order) and return the count."""
    rng = random.Random(seed)
    items = [f"5000{i:02d}" for i in range(40)]
    stores = ["0001", "0002", "0003", "0004", "0005"]
    types = ["sale"] * 8 + ["return", "adjustment"]
    start = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.timezone.utc)
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


def _replay(cfg_path: str, events: str, out: str) -> float:
    cfg = load_config(cfg_path)
    job = stock_stream.plan_job(cfg, events=events, output=out, seed=False)
    t0 = time.perf_counter()
    with beam.Pipeline(runner=stock_stream.local_runner(), options=PipelineOptions(["--direct_num_workers", "1"])) as p:
        stock_stream.build(p, job)
    return time.perf_counter() - t0


def run(*, quick: bool) -> dict[str, float | int | str]:
    n = 20_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "events.jsonl"
        lines = write_events(path, n)
        uri = f"file://{path}"
        t0 = time.perf_counter()
        raws = list(read_event_lines(uri, timezone="UTC"))
        for r in raws:
            parse_raw_event(r, timezone="UTC", source="bench")
        parse_s = time.perf_counter() - t0
        xw = load_crosswalks(str(WORLD / "crosswalk" / "sku.csv"), str(WORLD / "crosswalk" / "location.csv"))
        spec = SourceSpec(name="bench", kind="events", system=None, timezone="UTC")
        t0 = time.perf_counter()
        chunks = list(read_event_chunks(uri, timezone="UTC"))
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for c in chunks:
            canonicalize_chunk(c, spec=spec, crosswalks=xw, run_id="bench")
        canon_s = time.perf_counter() - t0
        wall = _replay(str(WORLD / "config.yaml"), uri, f"{tmp}/out")
        big: dict[str, float | int] = {}
        if not quick:  # a longer replay: the graph's fixed cost (~0.5-1 s) weighs less
            path.unlink()
            big_lines = write_events(path, 1_000_000)
            big_wall = _replay(str(WORLD / "config.yaml"), uri, f"{tmp}/out_1m")
            big = {"replay_1m_events": big_lines, "replay_1m_seconds": round(big_wall, 2), "replay_1m_events_per_s": round(big_lines / big_wall)}
    return {
        "events": lines,
        "replay_seconds": round(wall, 2),
        "replay_events_per_s": round(lines / wall),
        "goal_events_per_s": 100_000,
        "read_chunks_only_events_per_s": round(lines / read_s),
        "decode_canonicalize_only_events_per_s": round(lines / canon_s),
        "per_line_parse_events_per_s": round(lines / parse_s),
        "runner": "FnApiRunner, 1 worker, de-dup on",
        **big,
    }


if __name__ == "__main__":
    for k, v in run(quick=True).items():
        print(f"{k:<36} {v}")
