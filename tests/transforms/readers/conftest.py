"""Fixtures of the reader tests: the tiny crosswalk of `tiny`, loaded once per module."""

from __future__ import annotations

import pytest

from invrecon.transforms.crosswalks import Crosswalks, load_crosswalks
from tests.transforms.readers.tiny import write_crosswalks


@pytest.fixture(scope="module")
def tiny_crosswalks(tmp_path_factory) -> Crosswalks:
    return load_crosswalks(*write_crosswalks(tmp_path_factory.mktemp("crosswalk")))
