"""`make bench`: run the benchmarks, print their figures and write them to `bench/results/`.

    python -m bench                          # everything: batch (1m, 3m, 10m) + publish + edi + stream
    python -m bench batch [--sizes 1m,10m]   # the batch beside the SQL reference (sizes: 10k 100k 1m 3m 10m)
    python -m bench publish                  # publish time of the 1st and 30th of 30 consecutive runs
    python -m bench edi stream               # EDI parse and stream replay throughput
    python -m bench --quick                  # small sizes of everything, for a smoke run

Each `bench/bench_<name>.py` exposes `run(*, quick) -> dict` (batch also takes `sizes`) and may
have `report(figures) -> str`, a readable table. `bench/results/latest.json` keeps the latest
figures of every bench (a run replaces the sections it ran, each with its time); this run's
sections alone also go to `bench/results/run-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).parent
BENCHES = ("batch", "publish", "edi", "stream")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=f"which to run, of {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--sizes", help="batch sizes, comma-separated (10k, 100k, 1m, 3m, 10m; default 1m,3m,10m)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=BENCHES, help="run only this bench (same as naming it)")
    parser.add_argument("--out", default=str(HERE / "results"), help="results folder")
    parser.add_argument("--max-rss-gb", type=float, help="stop a measured child whose processes hold more (default 16, "
                        "or INVRECON_BENCH_MAX_RSS_MB): the machine is shared")
    args = parser.parse_args(argv)
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; expected some of {', '.join(BENCHES)}")
    names = list(dict.fromkeys(args.benches or ([args.only] if args.only else BENCHES)))
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()] if args.sizes else None
    if args.max_rss_gb:
        from bench import _common

        _common.MAX_RSS_MB = args.max_rss_gb * 1024
    now = dt.datetime.now(dt.UTC)
    run_results: dict[str, object] = {}
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}", flush=True)
        kwargs = {"sizes": sizes} if name == "batch" else {}
        figures = module.run(quick=args.quick, **kwargs)
        figures = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "quick": args.quick, **figures}
        if hasattr(module, "report"):
            print(module.report(figures), flush=True)
        else:
            for key, value in figures.items():
                print(f"  {key:<40} {value}", flush=True)
        run_results[f"bench_{name}"] = figures
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    latest_path = out / "latest.json"
    try:
        latest = json.loads(latest_path.read_text())
    except (OSError, ValueError):
        latest = {}
    latest.update({"when": now.isoformat(timespec="seconds"), "python": platform.python_version(), "machine": platform.machine()})
    latest.update(run_results)
    latest_path.write_text(json.dumps(latest, indent=2, default=str))
    (out / f"run-{now:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(run_results, indent=2, default=str))
    print(f"results written to {latest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
