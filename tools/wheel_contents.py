"""Checks for `make package-check` (tools/package_check.sh), run with the build venv's Python.

    python tools/wheel_contents.py contents CHECKOUT WHEEL SDIST
        The built distribution holds what workers need and nothing else: every import name under
        `invrecon`, every module of the repository's package folders, the expectation suites and
        the report and Data Docs templates, the `invrecon` console script; not the committed world data.
    python tools/wheel_contents.py missing-wheels LOCK WHEELHOUSE
        Prints the `name==version` pins of LOCK that have no wheel in WHEELHOUSE (one a line).

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import pathlib
import re
import sys
import tarfile
import zipfile

# pyproject's [tool.setuptools.package-dir]: repository folder -> import package.
FOLDERS = {
    "invrecon": "invrecon",
    "pipelines": "invrecon/pipelines",
    "transforms": "invrecon/transforms",
    "schemas": "invrecon/schemas",
    "expectations": "invrecon/expectations",
    "fixtures": "invrecon/fixtures",
}
# pyproject's package data of invrecon.pipelines: the report's and the Data Docs' templates, and
# `invrecon init`'s starter files.
TEMPLATE_GLOBS = ("*.j2", "gx/*.j2", "gx/*.css", "init/*.yaml", "init/*/*.yaml", "init/*/*.csv")
BARE_NAMES = ("pipelines", "transforms", "schemas", "expectations", "fixtures", "tests", "bench")
ENTRY_POINT = "invrecon = invrecon.pipelines.cli:console"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def expected_files(checkout: pathlib.Path) -> dict[str, pathlib.Path]:
    """Wheel member -> repository file: every module of every package folder (a folder with an
    `__init__.py`, below one of FOLDERS), the suites and the templates."""
    want: dict[str, pathlib.Path] = {}
    for folder, package in FOLDERS.items():
        root = checkout / folder
        for init in root.rglob("__init__.py"):
            pkg_dir = init.parent
            rel = pkg_dir.relative_to(root)
            if any(not (root / p / "__init__.py").exists() for p in [*rel.parents][:-1]):
                continue  # below a folder that is not a package
            for py in pkg_dir.glob("*.py"):
                want[f"{package}/{py.relative_to(root).as_posix()}"] = py
    for suite in (checkout / "expectations").glob("*.json"):
        want[f"invrecon/expectations/{suite.name}"] = suite
    for rel in template_files(checkout):
        want[f"invrecon/{rel}"] = checkout / rel
    return want


def template_files(checkout: pathlib.Path) -> list[str]:
    """The templates' paths relative to the checkout (`pipelines/templates/...`)."""
    root = checkout / "pipelines" / "templates"
    return sorted(p.relative_to(checkout).as_posix() for pattern in TEMPLATE_GLOBS for p in root.glob(pattern))


def check_contents(checkout: pathlib.Path, wheel: pathlib.Path, sdist: pathlib.Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        dist_info = next((n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")), None)
        if dist_info is None:
            return [f"{wheel.name}: no .dist-info folder"]
        for n in names:
            top = n.split("/")[0]
            if top not in ("invrecon", dist_info):
                problems.append(f"{wheel.name}: {n} is outside the `invrecon` package")
            if top in BARE_NAMES:
                problems.append(f"{wheel.name}: installs a top-level `{top}` package")
            if n.startswith("invrecon/fixtures/") and not n.endswith(".py"):
                problems.append(f"{wheel.name}: {n} is fixture data (only the generator's modules belong in the wheel)")
            if "/world/" in n:
                problems.append(f"{wheel.name}: {n} is committed world data")
        top_level = zf.read(f"{dist_info}/top_level.txt").decode().split() if f"{dist_info}/top_level.txt" in names else ["invrecon"]
        if top_level != ["invrecon"]:
            problems.append(f"{wheel.name}: top_level.txt names {top_level}, not just invrecon")
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode() if f"{dist_info}/entry_points.txt" in names else ""
        if ENTRY_POINT not in entry_points:
            problems.append(f"{wheel.name}: no console script `{ENTRY_POINT}`")
        for member, source in sorted(expected_files(checkout).items()):
            if member not in names:
                problems.append(f"{wheel.name}: {member} is missing (from {source.relative_to(checkout)})")
            elif zf.read(member) != source.read_bytes():
                problems.append(f"{wheel.name}: {member} differs from {source.relative_to(checkout)}")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile() and "/" in m.name}
    # The sdist is what Beam's --setup_file stages (workflow.tar.gz): workers build it, so the
    # suites and templates must be in it too.
    for rel in [*(f"expectations/{p.name}" for p in (checkout / "expectations").glob("*.json")),
                *template_files(checkout)]:
        if rel not in members:
            problems.append(f"{sdist.name}: {rel} is missing")
    problems += [f"{sdist.name}: {m} is committed world data" for m in sorted(members) if m.startswith("fixtures/world/")]
    return problems


def missing_wheels(lock: pathlib.Path, wheelhouse: pathlib.Path) -> list[str]:
    have = set()
    for whl in wheelhouse.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        have.add((_norm(name), version))
    missing = []
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        if (_norm(name), version.strip()) not in have:
            missing.append(f"{name.strip()}=={version.strip()}")
    return missing


def main(argv: list[str]) -> int:
    if argv[:1] == ["contents"] and len(argv) == 4:
        problems = check_contents(*(pathlib.Path(a) for a in argv[1:]))
        for p in problems:
            print(p)
        return 1 if problems else 0
    if argv[:1] == ["missing-wheels"] and len(argv) == 3:
        for pin in missing_wheels(pathlib.Path(argv[1]), pathlib.Path(argv[2])):
            print(pin)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
