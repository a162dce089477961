"""The nightly batch beside the independent SQL reference, at 1M and 10M (sku, location) keys.

For each size: a cached world (`invrecon fixtures --skus S --locations L --seed 1`; 1M is 5,000 x
200, 3M 15,000 x 200, 10M 50,000 x 200), then `invrecon batch` and `python -m tests.reference_sql` on it, each a
child process of its own (wall seconds, peak RSS, CPU seconds). Figures: positions/s (canonical
position rows the batch published, per wall second), the ratio of the batch's wall time to the
reference's, the core count and the load of the (shared) machine, each batch stage's own time
from its JSON stage lines (`"stage"` and `"duration_s"`; none when the batch logs none), and
whether the two discrepancy tables are equal row for row.

Run:  python -m bench batch [--sizes 1m,3m,10m] [--quick]
"""

from __future__ import annotations

import json
import shutil
import sys

import duckdb

from bench._common import CACHE, RUN_DATE, invrecon, log_marks, machine, run_measured, stage_lines, stage_totals, world

# label -> (skus, locations): skus x locations (sku, location) keys, ~1.7 position rows per key.
SIZES = {"10k": (200, 50), "100k": (1000, 100), "1m": (5000, 200), "3m": (15000, 200), "10m": (50000, 200)}
# 1M, 3M and 10M: peak memory must not grow with the day (issue 11), so three points of it.
DEFAULT_SIZES = ("1m", "3m", "10m")
QUICK_SIZES = ("10k",)
# Compared exactly, as the differential test does (tolerance and value_delta are floats).
KEY_COLUMNS = "sku, location, other_system, class, record_qty, other_qty, delta, raw_delta, explained_qty"


def _compare(batch_glob: str, reference: str) -> dict:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    b = f"(SELECT {KEY_COLUMNS} FROM read_parquet('{batch_glob}'))"
    r = f"(SELECT {KEY_COLUMNS} FROM read_parquet('{reference}'))"
    only_b = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {r})").fetchall()[0][0]
    only_r = con.execute(f"SELECT count(*) FROM ({r} EXCEPT ALL {b})").fetchall()[0][0]
    out = {
        "batch_rows": con.execute(f"SELECT count(*) FROM {b}").fetchall()[0][0],
        "reference_rows": con.execute(f"SELECT count(*) FROM {r}").fetchall()[0][0],
        "only_in_batch": only_b,
        "only_in_reference": only_r,
        "equal": only_b == 0 and only_r == 0,
        "by_class": dict(con.execute(f"SELECT class, count(*) FROM {r} GROUP BY 1 ORDER BY 1").fetchall()),
    }
    if not out["equal"]:
        out["examples_only_in_batch"] = [list(x) for x in con.execute(f"SELECT * FROM ({b} EXCEPT ALL {r}) ORDER BY ALL LIMIT 5").fetchall()]
        out["examples_only_in_reference"] = [list(x) for x in con.execute(f"SELECT * FROM ({r} EXCEPT ALL {b}) ORDER BY ALL LIMIT 5").fetchall()]
    return out


def _equal_to_truth(reference: str, truth: str) -> bool:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    r = f"(SELECT {KEY_COLUMNS} FROM read_parquet('{reference}'))"
    g = f"(SELECT {KEY_COLUMNS} FROM read_csv('{truth}'))"
    return con.execute(f"SELECT count(*) FROM ({r} EXCEPT ALL {g})").fetchall()[0][0] == 0 and \
        con.execute(f"SELECT count(*) FROM ({g} EXCEPT ALL {r})").fetchall()[0][0] == 0


def _last_json(path) -> dict | None:
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _run_size(label: str) -> dict:
    skus, locations = SIZES[label]
    path, made = world(skus, locations)
    runs = CACHE / "runs" / f"batch_{label}"
    shutil.rmtree(runs, ignore_errors=True)
    out_dir, ref_file = runs / "out", runs / "reference.parquet"
    config = str(path / "config.yaml")
    print(f"  {label}: batch ...", file=sys.stderr, flush=True)
    b = run_measured(invrecon("batch", "--config", config, "--run-date", RUN_DATE, "--output", str(out_dir), "--quiet"),
                     log_dir=runs, name="batch")
    print(f"  {label}: batch {b.wall_s:.1f} s, reference ...", file=sys.stderr, flush=True)
    r = run_measured([sys.executable, "-m", "tests.reference_sql", "--config", config, "--run-date", RUN_DATE, "--out", str(ref_file)],
                     log_dir=runs, name="reference")
    print(f"  {label}: reference {r.wall_s:.1f} s", file=sys.stderr, flush=True)
    res: dict = {"skus": skus, "locations": locations, "keys": skus * locations, "world": made}
    lines = stage_lines(b.stderr)
    res["batch"] = {**b.figures(), "exit_code": b.returncode, "stages": stage_totals(lines) or None,
                    "stage_lines": lines, "log_marks": log_marks(b.stderr)}
    res["reference"] = {**r.figures(), "exit_code": r.returncode}
    summary = _last_json(r.stdout)
    if summary:
        res["reference"].update({"position_rows": summary.get("positions"), "movements": summary.get("movements")})
        res["reference"]["positions_per_s"] = round(summary.get("positions", 0) / r.wall_s)
    if b.returncode != 0:
        res["batch"]["error"] = b.tail()
    if r.returncode != 0:
        res["reference"]["error"] = r.tail()
    if b.returncode == 0:
        con = duckdb.connect()
        res["position_rows"] = con.execute(f"SELECT count(*) FROM read_parquet('{out_dir}/positions/*/*.parquet')").fetchall()[0][0]
        res["events"] = con.execute(f"SELECT count(*) FROM read_parquet('{out_dir}/movements/**/*.parquet')").fetchall()[0][0]
        res["batch"]["positions_per_s"] = round(res["position_rows"] / b.wall_s)
        if summary:
            res["same_counts"] = (res["position_rows"], res["events"]) == (summary.get("positions"), summary.get("movements"))
    elif summary:  # the batch failed: the sizes as the reference read them
        res["position_rows"], res["events"] = summary.get("positions"), summary.get("movements")
    res["ratio_batch_to_reference"] = round(b.wall_s / r.wall_s, 2)
    if b.returncode == 0 and r.returncode == 0:
        res["discrepancies"] = _compare(f"{out_dir}/discrepancies/*/*.parquet", str(ref_file))
    if r.returncode == 0:  # the reference against the generator's own ground truth
        res["reference_equals_ground_truth"] = _equal_to_truth(str(ref_file), str(path / "ground_truth" / "discrepancies.csv"))
    shutil.rmtree(out_dir, ignore_errors=True)  # GBs at 10M; the logs and the reference's rows stay
    return res


def run(*, quick: bool, sizes: list[str] | None = None) -> dict:
    chosen = list(sizes or (QUICK_SIZES if quick else DEFAULT_SIZES))
    unknown = [s for s in chosen if s not in SIZES]
    if unknown:
        raise ValueError(f"unknown size(s) {', '.join(unknown)}; expected some of {', '.join(SIZES)}")
    figures: dict = {"run_date": RUN_DATE, **machine(), "runner": "batch: FnApiRunner (its default); reference: DuckDB"}
    for label in chosen:
        figures[label] = _run_size(label)
    return figures


def _gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def report(figures: dict) -> str:
    """A readable table of `run`'s figures."""
    lines = [f"batch vs SQL reference, run date {figures['run_date']}, {figures['cores']} cores "
             f"({figures['usable_cores']} usable), load {figures['load_avg_1m_at_start']} at start"]
    head = f"{'size':<5} {'keys':>11} {'pos rows':>11} {'events':>11} | {'batch':>9} {'RSS':>8} {'pos/s':>8} | {'reference':>9} {'RSS':>8} {'pos/s':>8} | {'ratio':>6} | tables"
    lines += [head, "-" * len(head)]
    notes = []
    for label in SIZES:
        f = figures.get(label)
        if not f:
            continue
        b, r = f["batch"], f["reference"]
        d = f.get("discrepancies")
        same = "n/a" if d is None else (f"equal ({d['batch_rows']:,} rows)" if d["equal"] else
                                          f"DIFFER: {d['only_in_batch']:,} only in batch, {d['only_in_reference']:,} only in reference")
        lines.append(
            f"{label:<5} {f['keys']:>11,} {f.get('position_rows') or 0:>11,} {f.get('events') or 0:>11,} | "
            f"{b['wall_s']:>7.1f} s {_gb(b['peak_rss_mb']):>8} {b.get('positions_per_s', 0):>8,} | "
            f"{r['wall_s']:>7.1f} s {_gb(r['peak_rss_mb']):>8} {r.get('positions_per_s', 0):>8,} | "
            f"{f['ratio_batch_to_reference']:>5.2f}x | {same}"
        )
        stages = b.get("stages")
        notes.append(f"  {label} batch stages: " + (", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) if stages
                                                     else "none (no JSON line with `stage` and `duration_s` on its stderr)"))
        if b.get("log_marks"):
            notes.append(f"  {label} batch progress messages: " + ", ".join(f"{k} {v:.1f} s" for k, v in b["log_marks"].items()))
        checks = []
        if "same_counts" in f:
            checks.append("same position and movement counts" if f["same_counts"] else "DIFFERENT position / movement counts")
        if "reference_equals_ground_truth" in f:
            checks.append("reference = the world's ground truth" if f["reference_equals_ground_truth"] else "reference DIFFERS from the ground truth")
        if checks:
            notes.append(f"  {label} checks: " + "; ".join(checks))
        w = f["world"]
        notes.append(f"  {label} world: {w['flags']}, " + ("cached" if w.get("cached") else f"generated in {w['generate_wall_s']} s, peak {_gb(w['generate_peak_rss_mb'])}"))
        for who, m in (("batch", b), ("reference", r)):
            if m.get("killed_over_rss_mb"):
                notes.append(f"  {label} {who} STOPPED by the bench's memory guard at {_gb(m['killed_over_rss_mb'])} "
                             f"after {m['wall_s']:.0f} s (INVRECON_BENCH_MAX_RSS_MB / --max-rss-gb)")
        if b.get("exit_code") or r.get("exit_code"):
            notes.append(f"  {label} exit codes: batch {b.get('exit_code')}, reference {r.get('exit_code')}")
    sized = [(label, figures[label]) for label in SIZES if figures.get(label)]
    if len(sized) > 1:  # issue 11: memory bounded by the largest bucket, not by the day
        notes.append("  peak RSS by size: " + ", ".join(
            f"{label} batch {_gb(f['batch']['peak_rss_mb'])} / reference {_gb(f['reference']['peak_rss_mb'])}" for label, f in sized))
    return "\n".join(lines + notes)


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(report(result))
    print(json.dumps(result, indent=2, default=str))
