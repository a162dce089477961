"""`invrecon sql ... | head`: a reader that stops early is not an error (issue 12, §3)."""

from __future__ import annotations

import pathlib
import shlex
import subprocess
import sys

import duckdb
import pytest

INVRECON = pathlib.Path(sys.executable).with_name("invrecon")


@pytest.fixture(scope="module")
def big_warehouse(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("pipe") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS i, 'row ' || range AS s FROM range(200000)")
    con.close()
    return path


@pytest.mark.parametrize("mode", [["--csv"], ["--max-rows", "200000"]], ids=["csv", "table"])
def test_sql_into_head_ends_quietly(big_warehouse, mode):
    cmd = " ".join(shlex.quote(a) for a in [str(INVRECON), "sql", "--warehouse", str(big_warehouse), *mode, "SELECT * FROM t"])
    # A real pipe: head reads two lines and closes it while invrecon is still writing.
    done = subprocess.run(["bash", "-c", f"{cmd} | head -2; exit ${{PIPESTATUS[0]}}"], capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
