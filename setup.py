"""Only for runners that ask for a setup.py (`--setup_file ./setup.py`); everything is in pyproject.toml.

Beam's stager builds the sdist it ships to workers with `python -m build --sdist --no-isolation`
(or `python setup.py sdist` where `build` is not installed); both read the metadata, packages and
package data from pyproject.toml. See docs/runners.md.
"""

from setuptools import setup

setup()
