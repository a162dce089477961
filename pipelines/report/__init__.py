"""The finance discrepancy report: `invrecon report --config CFG --run-date D`.

Reads the DuckDB warehouse a batch run loaded (`<output>/warehouse.duckdb`, read-only) and the
config's items master (for item descriptions), and writes to `<output>/reports/<D>/`:

- `discrepancy_report_<D>.html`: one self-contained page (inline CSS and SVG charts, no script,
  nothing fetched at view time; Jinja2 with autoescape). At the top, the sign convention and a
  glossary of the classes; then totals and value at stake gross and net by location and class,
  the top N of M discrepancies by absolute value with lineage back to the source file and line /
  segment, value at stake over the last runs split into new and carried over, aging, inventory
  record accuracy over the last runs, oversell risk, alerts and data quality;
- `discrepancy_report_<D>.xlsx`: Summary, Glossary, Detail, By location, By location and class,
  Trend, Accuracy, Aging, Oversell, Alerts and Data quality sheets, each list an Excel table,
  numbers stored as numbers, money in currency format, printable (landscape, one page wide,
  header row repeated);
- `discrepancies_<D>.csv`: the detail (UTF-8 with a BOM, for Excel);
- `alerts.jsonl`: the run date's alerts (also written by `invrecon batch`).

Sign convention: delta = other system − book (the record system), value = delta × unit cost; a
negative value means the book holds more than the other system counts. A discrepancy is *carried
over* when the same sku, location, other system and class was open on the previous succeeded run
date, *new* otherwise. Lineage paths are relative to the config file's folder.

The HTML links the run's entry in the Data Docs (`<output>/data_docs/index.html#run-<D>`, built by
`invrecon batch`): a relative link when both are on the local disk, the URL otherwise.

Every number comes from SQL over the warehouse views (pipelines.warehouse_views.VIEWS), so the report
says what an analyst's query says. Text that comes from source data and begins with `=`, `+`, `-`,
`@`, tab or CR is neutralized in XLSX and CSV (`neutralize`), since a spreadsheet would run it as a
formula; the HTML escapes everything.

Modules, one job each: `data` (the SQL), `charts` (SVG geometry), `page` (HTML), `workbook`
(XLSX), `csvfile` (CSV), `cli` (the command line); `common` holds what they share.

Run locally after `make run`:

    invrecon report --config fixtures/world/config.yaml --run-date 2026-11-30 --output out
"""

from __future__ import annotations

from invrecon.pipelines.report.charts import bar_chart, column_chart, line_chart
from invrecon.pipelines.report.cli import main
from invrecon.pipelines.report.common import DETAIL_COLUMNS, FORMATS, GLOSSARY, SIGN_CONVENTION, TOP_N, neutralize
from invrecon.pipelines.report.csvfile import write_csv
from invrecon.pipelines.report.data import NoRunError, ReportData, gather
from invrecon.pipelines.report.page import render_html
from invrecon.pipelines.report.workbook import write_xlsx

__all__ = [
    "DETAIL_COLUMNS", "FORMATS", "GLOSSARY", "NoRunError", "ReportData", "SIGN_CONVENTION", "TOP_N", "bar_chart", "column_chart", "gather",
    "line_chart", "main", "neutralize", "render_html", "write_csv", "write_xlsx",
]
