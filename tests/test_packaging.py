"""The worker distribution's static parts: the Dockerfile's pins agree with requirements.lock and
pyproject.toml (the image cannot be built on the development machines: no Docker engine), the
Docker build context holds what the wheel needs, setup.py defers to pyproject.toml, and
`make package-check`'s contents check catches what it is there to catch."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import apache_beam

from tests.conftest import ROOT


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: {line!r} is not pinned with =="
            pins[_norm(name)] = version.strip()
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins_in(text: str) -> dict[str, str]:
    """`name==version` pins written in a text (a RUN line, a Makefile recipe, a list of specs)."""
    return {_norm(m.group(1)): m.group(2) for m in re.finditer(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]*\])?==([A-Za-z0-9.+!-]+)", text)}


def dockerfile() -> str:
    # Continuation lines joined, comments dropped: one instruction per line.
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_dockerfile_pins_agree_with_the_lock_and_pyproject():
    pins, project, docker = lock(), pyproject(), dockerfile()
    beam = re.search(r"^ARG BEAM_VERSION=(\S+)$", docker, re.M)
    assert beam, "Dockerfile: no `ARG BEAM_VERSION=...`"
    assert beam.group(1) == pins["apache-beam"] == pins_in(" ".join(project["project"]["dependencies"]))["apache-beam"]
    assert beam.group(1) == apache_beam.version.__version__  # the launcher's Beam is the workers'

    froms = re.findall(r"^FROM\s+(\S+)", docker, re.M)
    sdk = [f for f in froms if f.startswith("apache/beam_python")]
    assert sdk == ["apache/beam_python3.11_sdk:${BEAM_VERSION}"], froms
    bases = {f for f in froms if f.startswith("python:")}
    assert bases == {"python:3.11-slim"}, froms
    python = "3.11"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == python  # the launcher's Python
    assert project["project"]["requires-python"] == ">=3.11,<3.12"

    # Every version the Dockerfile names is the lock's (or the build backend's of pyproject).
    allowed = {**pins, **pins_in(" ".join(project["build-system"]["requires"]))}
    named = pins_in(" ".join(line for line in docker.splitlines() if line.startswith("RUN")))
    assert named, "Dockerfile: no pinned tool found in RUN lines"
    assert {k: v for k, v in named.items() if allowed.get(k) != v} == {}

    # The dependencies are the lock itself, invrecon is the wheel without dependency resolution,
    # and Beam's boot program is the entrypoint.
    assert re.search(r"^COPY requirements\.lock (\S+)$", docker, re.M)
    assert re.search(r"pip install .*-r /tmp/requirements\.lock", docker)
    assert re.search(r"pip install .*--no-deps /tmp/dist/invrecon-\*\.whl", docker)
    assert "COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam" in docker
    assert re.search(r'^ENTRYPOINT \["/opt/apache/beam/boot"\]$', docker, re.M)


def test_pyproject_and_makefile_pins_agree_with_the_lock():
    pins, project = lock(), pyproject()
    specs = [*project["project"]["dependencies"], *(s for extra in project["project"]["optional-dependencies"].values() for s in extra)]
    declared = pins_in(" ".join(specs))
    assert len(declared) == len(specs), "every dependency in pyproject.toml is pinned with =="
    assert {k: (v, pins.get(k)) for k, v in declared.items() if pins.get(k) != v} == {}
    # `make setup` installs the build backend pyproject names (builds run with --no-isolation).
    backend = pins_in(" ".join(project["build-system"]["requires"]))
    assert backend == {"setuptools": "80.9.0"}
    assert pins_in((ROOT / "Makefile").read_text())["setuptools"] == backend["setuptools"]


def test_docker_context_holds_what_the_wheel_needs():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the build context is an allowlist"
    kept = {p[1:] for p in patterns if p.startswith("!")}
    folders = {"invrecon", *pyproject()["tool"]["setuptools"]["package-dir"].values()} - {"fixtures"}
    assert {f"{folder}/" for folder in folders} <= kept
    assert {"pyproject.toml", "setup.py", "requirements.lock", "fixtures/*.py"} <= kept
    assert not any(p.startswith("fixtures/world") or p == "fixtures/" for p in kept)


def test_setup_py_defers_to_pyproject():
    out = subprocess.run([sys.executable, "setup.py", "--name", "--version"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["invrecon", pyproject()["project"]["version"]]


def _wheel_contents():
    spec = importlib.util.spec_from_file_location("wheel_contents", ROOT / "tools" / "wheel_contents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_check_catches_a_bad_wheel(tmp_path):
    wc = _wheel_contents()
    expected = wc.expected_files(ROOT)
    assert {"invrecon/expectations/position.json", "invrecon/pipelines/templates/report.html.j2",
            "invrecon/pipelines/templates/data_docs_index.html.j2", "invrecon/pipelines/templates/gx/page.j2",
            "invrecon/transforms/edi/x12.py", "invrecon/fixtures/generator/__init__.py"} <= set(expected)
    info = "invrecon-0.2.0.dist-info"
    good, bad = tmp_path / "good" / "invrecon-0.2.0-py3-none-any.whl", tmp_path / "bad" / "invrecon-0.2.0-py3-none-any.whl"
    for path in (good, bad):
        path.parent.mkdir()
        with zipfile.ZipFile(path, "w") as zf:
            for member, source in expected.items():
                if path is bad and member == "invrecon/expectations/movement.json":
                    continue
                zf.writestr(member, source.read_bytes())
            zf.writestr(f"{info}/top_level.txt", "invrecon\n" + ("pipelines\n" if path is bad else ""))
            zf.writestr(f"{info}/entry_points.txt", "[console_scripts]\n" + wc.ENTRY_POINT + "\n")
            if path is bad:
                zf.writestr("pipelines/__init__.py", "")
                zf.writestr("invrecon/fixtures/world/config.yaml", "timezone: UTC\n")
    sdist = tmp_path / "invrecon-0.2.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for rel in [*(f"expectations/{p.name}" for p in (ROOT / "expectations").glob("*.json")), *wc.template_files(ROOT)]:
            data = (ROOT / rel).read_bytes()
            member = tarfile.TarInfo(f"invrecon-0.2.0/{rel}")
            member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
    assert wc.check_contents(ROOT, good, sdist) == []
    problems = "\n".join(wc.check_contents(ROOT, bad, sdist))
    for expected_problem in ("pipelines/__init__.py is outside the `invrecon` package", "installs a top-level `pipelines` package",
                             "invrecon/fixtures/world/config.yaml is committed world data", "top_level.txt names ['invrecon', 'pipelines']",
                             "invrecon/expectations/movement.json is missing"):
        assert expected_problem in problems
