"""The README's Layout block is the code's own: one line per module, its first docstring line."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_module_says_its_job_and_the_readme_map_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "layout.py")], capture_output=True, text=True, check=True).stdout
    assert "(no docstring)" not in out, [line for line in out.splitlines() if "(no docstring)" in line]
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "layout.py"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
