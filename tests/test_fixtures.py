"""The world generator: `make fixtures` rebuilds the committed world byte for byte."""

from __future__ import annotations

import pathlib

from invrecon.fixtures.generator import WorldSpec, generate
from tests.conftest import WORLD


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "out" not in p.relative_to(root).parts
    }


def test_make_fixtures_rebuilds_the_committed_world(tmp_path):
    # The flags of `make fixtures`: a generator change that moves a draw shows up here.
    generate(tmp_path / "world", WorldSpec(skus=40, locations=6, days=1, seed=7))
    want, got = _files(WORLD), _files(tmp_path / "world")
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
