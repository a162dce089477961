"""`make bench`: run every benchmark module, print its figures and write them to a file.

Each `bench/bench_*.py` module exposes `run(*, quick: bool) -> dict[str, float | int | str]`.
Results go to `bench/results/latest.json` (and a dated copy) so figures can be compared
across commits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import pathlib
import pkgutil
import platform
import sys

HERE = pathlib.Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", help="run only bench_<ONLY>")
    parser.add_argument("--out", default=str(HERE / "results"), help="results folder")
    args = parser.parse_args(argv)

    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n == f"bench_{args.only}"]
    results: dict[str, object] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
    }
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        figures = module.run(quick=args.quick)
        for key, value in figures.items():
            print(f"  {key:<40} {value}", flush=True)
        results[name] = figures
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=str)
    (out / "latest.json").write_text(text)
    print(f"results written to {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
