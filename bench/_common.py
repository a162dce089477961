"""What the bench modules share: measured child processes, cached worlds, the batch's stage lines.

Every measured command runs as a child process of the bench, so its peak memory is its own:
`os.wait4` returns the child's resource usage (ru_maxrss is the largest resident set of the child
and of anything it waited for), next to the wall time measured around it. Worlds are generated
once per (size, days, seed, generator version) under `bench/.cache/` (git-ignored) and reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RUN_DATE = "2026-11-30"
# The generator's own code names a world as much as its flags do: a changed generator means a new world.
GENERATOR_FILES = (*sorted((ROOT / "fixtures" / "generator").glob("*.py")), ROOT / "fixtures" / "edi_files.py")


@dataclasses.dataclass
class Measured:
    """Wall time, peak memory and CPU time of one child process."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    returncode: int
    stdout: pathlib.Path
    stderr: pathlib.Path
    killed_over_mb: float | None = None  # set when the memory guard stopped it

    def figures(self) -> dict:
        out = {"wall_s": round(self.wall_s, 2), "peak_rss_mb": round(self.peak_rss_mb, 1), "cpu_s": round(self.cpu_s, 2)}
        if self.killed_over_mb:
            out["killed_over_rss_mb"] = self.killed_over_mb
        return out

    def tail(self, n: int = 3000) -> str:
        return self.stderr.read_text(errors="replace")[-n:]


# The machine is shared: a child whose processes together hold more than this is stopped (and
# reported so) rather than left to the kernel's OOM killer, which may pick someone else's process.
MAX_RSS_MB = float(os.environ.get("INVRECON_BENCH_MAX_RSS_MB", 16 * 1024))
POLL_S = 0.25


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc), in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def run_measured(cmd: list[str], *, log_dir: pathlib.Path, name: str, cwd: pathlib.Path = ROOT,
                 max_rss_mb: float | None = None) -> Measured:
    """Run `cmd` as a child (stdout / stderr to `<log_dir>/<name>.{out,err}`, so never a terminal).

    Peak RSS is the larger of the kernel's ru_maxrss (largest single process) and the largest sum
    over the child's process tree sampled every POLL_S. Over `max_rss_mb` (default MAX_RSS_MB) the
    child's process group is killed.
    """
    limit_kb = (MAX_RSS_MB if max_rss_mb is None else max_rss_mb) * 1024
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    sampled, killed = 0, None
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = _tree_rss_kb(proc.pid)
            sampled = max(sampled, rss)
            if rss > limit_kb and killed is None:
                killed = round(rss / 1024, 1)
                os.killpg(proc.pid, signal.SIGKILL)  # the group this call started, nothing else
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    peak_mb = max(usage.ru_maxrss, sampled) / 1024
    return Measured(wall, peak_mb, usage.ru_utime + usage.ru_stime, proc.returncode, out_path, err_path, killed)


def invrecon(*args: str) -> list[str]:
    return [sys.executable, "-m", "invrecon.pipelines.cli", *args]


def _generator_version() -> str:
    h = hashlib.sha256()
    for f in GENERATOR_FILES:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def world(skus: int, locations: int, *, days: int = 1, seed: int = 1) -> tuple[pathlib.Path, dict]:
    """A generated world (cached); returns its folder and how it was made (generation time if now)."""
    name = f"world_{skus}x{locations}_d{days}_s{seed}"
    path = CACHE / name
    marker = path / ".complete"
    version = _generator_version()
    if marker.exists():
        made = json.loads(marker.read_text())
        if made.get("generator") == version:
            return path, {**made, "cached": True}
    tmp = CACHE / f"tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    m = run_measured(
        invrecon("fixtures", "--out", str(tmp), "--skus", str(skus), "--locations", str(locations), "--days", str(days), "--seed", str(seed)),
        log_dir=CACHE / "logs", name=f"generate_{name}",
    )
    if m.returncode != 0:
        raise RuntimeError(f"invrecon fixtures failed for {name}:\n{m.tail()}")
    made = {"generator": version, "flags": f"--skus {skus} --locations {locations} --days {days} --seed {seed}",
            "generate_wall_s": round(m.wall_s, 1), "generate_peak_rss_mb": round(m.peak_rss_mb, 1),
            "input_bytes": sum(f.stat().st_size for f in (tmp / "inputs").rglob("*") if f.is_file())}
    (tmp / ".complete").write_text(json.dumps(made))
    tmp.rename(path)
    return path, {**made, "cached": False}


def stage_lines(stderr: pathlib.Path) -> list[dict]:
    """The batch's JSON log lines that carry both `stage` and `duration_s`, in order."""
    out = []
    for line in stderr.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "stage" in rec and "duration_s" in rec:
            try:
                out.append({"stage": str(rec["stage"]), "duration_s": float(rec["duration_s"])})
            except (TypeError, ValueError):
                continue
    return out


def stage_totals(lines: list[dict]) -> dict[str, float]:
    """Seconds per stage (a stage logged more than once adds up), in first-seen order."""
    totals: dict[str, float] = {}
    for rec in lines:
        totals[rec["stage"]] = round(totals.get(rec["stage"], 0.0) + rec["duration_s"], 3)
    return totals


# The batch's progress messages of today ("reconciled in 24.6 s"): seconds since the run started.
_MARKS = {
    "read": r"read and canonicali[sz]ed in ([\d.]+) s",
    "dq_gate": r"data-quality gate \w+ in ([\d.]+) s",
    "reconcile": r"reconciled in ([\d.]+) s",
    "publish_load": r"published and loaded in ([\d.]+) s",
}


def log_marks(stderr: pathlib.Path) -> dict[str, float]:
    """Time of each step from the batch's progress messages (cumulative marks made per step)."""
    text = stderr.read_text(errors="replace")
    out, previous = {}, 0.0
    for step, pattern in _MARKS.items():
        found = re.findall(pattern, text)
        if found:
            t = float(found[-1])
            out[step] = round(t - previous, 2)
            previous = t
    return out


def machine() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
