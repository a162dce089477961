"""invrecon: retail inventory and fulfilment reconciliation on Apache Beam.

The distribution's import names all live under this package. In the repository the sub-packages
keep the design card's top-level folders (`pipelines/`, `transforms/`, `schemas/`,
`expectations/`, `fixtures/`); `pyproject.toml` maps them to `invrecon.pipelines`, ... .
"""

__version__ = "0.2.0"
