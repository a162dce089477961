"""Benchmark: EDI parse + map throughput (MB/s on one core) and peak memory.

Generates a file of 846 inventory advices and 856 ship notices the way the synthetic world
writes them (`fixtures.edi_files.render_x12`), ~100 MB (quick: ~5 MB), in a temp dir, then
streams it through `parse_edi_stream` and counts the records, three times (the median is the
figure). Peak memory is the tracemalloc peak of a separate, smaller parse run (tracing slows
Python down, so it is not timed) compared with one on a file a quarter of the size: flat memory
means the ratio stays near 1.

Run:  python -m bench --only edi [--quick]
"""

from __future__ import annotations

import os
import pathlib
import statistics
import tempfile
import time
import tracemalloc

from invrecon.fixtures.edi_files import render_x12, transaction
from invrecon.transforms.edi import parse_edi_stream

__all__ = ["generate", "run"]

# Items per transaction and transactions per interchange: realistic warehouse feed sizes
# (a DC's 846 lists a few hundred items; a truck's 856 a few dozen).
ITEMS_846 = 400
ITEMS_856 = 40
TRANSACTIONS_PER_INTERCHANGE = 50
GOAL_MB_S = 30.0
REPEATS = 3


def _upc(n: int) -> str:
    body = f"{n % 10**11:011d}"
    odd = sum(int(c) for c in body[0::2])
    even = sum(int(c) for c in body[1::2])
    return body + str((10 - (odd * 3 + even) % 10) % 10)


def _tx_846(control: int, seed: int) -> list[list[str]]:
    body = [["BIA", "00", "MM", f"INV{control}", "20261130", "2000"],
            ["N1", "WH", "Main DC", "92", f"DC{seed % 7:02d}"]]
    for k in range(ITEMS_846):
        body.append(["LIN", "", "UP", _upc(seed * 1000 + k)])
        body.append(["QTY", "17", str((seed + k) % 500), "EA"])
        if k % 2 == 0:
            body.append(["QTY", "33", str((seed + k) % 400), "EA"])
    body.append(["CTT", str(ITEMS_846)])
    return transaction("846", control, body)


def _tx_856(control: int, seed: int) -> list[list[str]]:
    body = [["BSN", "00", f"SHP{control}", "20261130", "1015"], ["HL", "1", "", "S"],
            ["DTM", "011", "20261130", "0900"], ["N1", "SF", "Main DC", "92", "DC01"],
            ["N1", "ST", "Store", "92", f"S{seed % 90:03d}"], ["HL", "2", "1", "O"],
            ["PRF", f"PO{control}"]]
    for k in range(ITEMS_856):
        body.append(["HL", str(k + 3), "2", "I"])
        body.append(["LIN", "", "UP", _upc(seed * 100 + k)])
        body.append(["SN1", "", str(1 + k % 24), "EA"])
    body.append(["CTT", str(ITEMS_856)])
    return transaction("856", control, body)


def generate(path: pathlib.Path, *, size: int) -> int:
    """Write interchanges of 846s and 856s to `path` until it holds >= `size` bytes."""
    written = 0
    control = 1
    with open(path, "w", encoding="ascii", newline="") as fh:
        while written < size:
            txs = []
            for j in range(TRANSACTIONS_PER_INTERCHANGE):
                make = _tx_846 if j % 5 == 0 else _tx_856
                txs.append(make(j + 1, control * 100 + j))
            text = render_x12(txs, sender="WMS", receiver="ERP", control=control, date="261130",
                              time="2100", gs_code="IB")
            fh.write(text)
            written += len(text)
            control += 1
    return written


def _parse(path: pathlib.Path) -> tuple[int, int]:
    records = errors = 0
    with open(path, "rb") as fh:
        for rec in parse_edi_stream(fh, file=path.name):
            if rec["kind"] == "error":
                errors += 1
            else:
                records += 1
    return records, errors


def _read_and_split(path: pathlib.Path) -> int:
    """The baseline: read the file and split it into segments with `bytes.split`, nothing else."""
    data = path.read_bytes()
    terminator = data[105:106] if data[:3] == b"ISA" else b"~"  # ISA is 106 bytes: its last is the terminator
    return len(data.split(terminator))


def _peak(path: pathlib.Path) -> int:
    tracemalloc.start()
    try:
        _parse(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(*, quick: bool) -> dict[str, float | int | str]:
    """Generate, parse and map; return throughput and memory figures."""
    size = (5 if quick else 100) * 10**6
    with tempfile.TemporaryDirectory(prefix="bench_edi_") as tmp:
        big = pathlib.Path(tmp) / "feed.edi"
        small = pathlib.Path(tmp) / "small.edi"
        mem_size = max(size // 20, 2 * 10**6)
        generate(big, size=size)
        generate(small, size=mem_size)
        mid = pathlib.Path(tmp) / "mid.edi"
        generate(mid, size=mem_size * 4)
        nbytes = os.path.getsize(big)
        times = []
        for _ in range(REPEATS):  # a shared machine: the median of a few runs is the figure
            start = time.perf_counter()
            records, errors = _parse(big)
            times.append(time.perf_counter() - start)
        baseline = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            _read_and_split(big)
            baseline.append(time.perf_counter() - start)
        peak_small, peak_mid = _peak(small), _peak(mid)
    elapsed = statistics.median(times)
    base = statistics.median(baseline)
    return {
        "edi_file_mb": round(nbytes / 1e6, 1),
        "edi_records": records,
        "edi_errors": errors,
        "edi_seconds": round(elapsed, 2),
        "edi_mb_per_s": round(nbytes / 1e6 / elapsed, 1),
        "edi_mb_per_s_best_worst": f"{nbytes / 1e6 / min(times):.1f} / {nbytes / 1e6 / max(times):.1f}",
        "edi_goal_mb_per_s": GOAL_MB_S,
        "baseline_read_split_mb_per_s": round(nbytes / 1e6 / base, 1),
        "edi_time_to_baseline_ratio": round(elapsed / base, 1),
        "edi_peak_mem_mb_small": round(peak_small / 1e6, 2),
        "edi_peak_mem_mb_4x": round(peak_mid / 1e6, 2),
        "edi_peak_mem_ratio_4x": round(peak_mid / max(peak_small, 1), 2),
    }


if __name__ == "__main__":
    for key, value in run(quick=True).items():
        print(f"{key:<28} {value}")
