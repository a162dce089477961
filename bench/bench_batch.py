"""Batch throughput: generate worlds of growing size, run `invrecon batch`, time each stage.

Each size runs in a subprocess so its peak memory (ru_maxrss of the child) is its own. Stage
times come from the batch's own JSON log lines.
"""

from __future__ import annotations

import json
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

from invrecon.fixtures.generator import WorldSpec, generate

# (label = skus x locations): ~11k, ~216k and ~864k positions across ERP, WMS, stores and commerce.
SIZES_QUICK = [("200x32", 200, 32)]
SIZES_FULL = [("200x32", 200, 32), ("2000x64", 2000, 64), ("4000x128", 4000, 128)]
STAGES = {
    "read": r"read and canonicalized in ([\d.]+) s",
    "dq_gate": r"data-quality gate \w+ in ([\d.]+) s",
    "reconcile": r"reconciled in ([\d.]+) s",
    "publish_load": r"published and loaded in ([\d.]+) s",
}


def _run_one(root: pathlib.Path, label: str, skus: int, locations: int) -> dict:
    world = root / f"world_{label}"
    t0 = time.perf_counter()
    generate(world, WorldSpec(skus=skus, locations=locations, seed=1))
    gen_s = time.perf_counter() - t0
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "invrecon.pipelines.cli", "batch", "--config", str(world / "config.yaml"),
         "--run-date", "2026-11-30", "--output", str(root / f"out_{label}"), "--quiet"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"batch failed on {label}: {proc.stderr[-2000:]}")
    peak_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    import duckdb

    con = duckdb.connect(str(root / f"out_{label}" / "warehouse.duckdb"), read_only=True)
    positions = con.execute("SELECT count(*) FROM positions").fetchall()[0][0]
    events = con.execute("SELECT count(*) FROM movements").fetchall()[0][0]
    con.close()
    out = {f"{label}_positions": positions, f"{label}_events": events, f"{label}_generate_s": round(gen_s, 2), f"{label}_batch_wall_s": round(wall, 2)}
    cumulative = 0.0
    for stage, pattern in STAGES.items():
        m = re.findall(pattern, proc.stderr)
        if m:
            t = float(m[-1])
            out[f"{label}_{stage}_s"] = round(t - cumulative, 2)
            cumulative = t
    out[f"{label}_positions_per_s"] = int(positions / wall)
    out[f"{label}_peak_rss_mb"] = round(peak_mb, 1)
    return out


def run(*, quick: bool) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="invrecon-bench-") as tmp:
        for label, skus, locations in SIZES_QUICK if quick else SIZES_FULL:
            figures.update(_run_one(pathlib.Path(tmp), label, skus, locations))
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
