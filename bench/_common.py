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
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RUN_DATE = "2026-11-30"
# The generator's own code names a world as much as its flags do: a changed generator means a new world.
GENERATOR_FILES = (ROOT / "fixtures" / "generator.py", ROOT / "fixtures" / "edi_files.py")


@dataclasses.dataclass
class Measured:
    """Wall time, peak memory and CPU time of one child process."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    returncode: int
    stdout: pathlib.Path
    stderr: pathlib.Path

    def figures(self) -> dict:
        return {"wall_s": round(self.wall_s, 2), "peak_rss_mb": round(self.peak_rss_mb, 1), "cpu_s": round(self.cpu_s, 2)}

    def tail(self, n: int = 3000) -> str:
        return self.stderr.read_text(errors="replace")[-n:]


def run_measured(cmd: list[str], *, log_dir: pathlib.Path, name: str, cwd: pathlib.Path = ROOT) -> Measured:
    """Run `cmd` as a child (stdout / stderr to `<log_dir>/<name>.{out,err}`, so never a terminal)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    return Measured(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, proc.returncode, out_path, err_path)


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
