"""The XLSX workbook: one Excel table per list (filters, banded rows, a name an analyst can refer
to), numbers stored as numbers in formats with no trailing point, money in its currency format,
text neutralized (`common.neutralize`) and written as text, never as a formula; every sheet
prints landscape, one page wide, with its header row repeated."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import xlsxwriter

from invrecon.pipelines.report.common import CURRENCY_SYMBOLS, DETAIL_COLUMNS, SIGN_CONVENTION, glossary_rows, neutralize
from invrecon.pipelines.report.data import ReportData

__all__ = ["NUMBER_FORMATS", "SHEETS", "write_xlsx"]

# Cell formats by kind. Eaches are whole numbers; "num" (tolerances, alert thresholds) may have a
# fraction. `#,##0.##` would show 5 as "5." in Excel: every format here has digits after its point.
NUMBER_FORMATS = {"int": "#,##0;[Red]-#,##0", "num": "#,##0.00", "pct": "0.0%", "date": "yyyy-mm-dd"}
TABLE_STYLE = "Table Style Light 9"

Columns = Sequence[tuple[str, str, str]]
LOCATION_COLUMNS = (
    ("location", "Location", "text"), ("location_type", "Location type", "text"), ("keys", "Keys", "int"),
    ("rows", "Discrepancies", "int"), ("gross_value", "Gross value", "money"), ("net_value", "Net value", "money"),
    ("unexplained_gross_value", "Unexplained gross value", "money"), ("explained_gross_value", "Explained gross value", "money"),
    ("currency", "Currency", "text"), ("ira_strict", "IRA strict", "pct"), ("ira_tolerance", "IRA within tolerance", "pct"),
    ("record_units", "Record units", "int"), ("abs_variance_units", "Σ|variance| units", "int"), ("abs_deviation", "Absolute deviation", "pct"),
)
LOCATION_CLASS_COLUMNS = (
    ("location", "Location", "text"), ("location_type", "Location type", "text"), ("other_system", "Other system", "text"),
    ("class", "Class", "text"), ("rows", "Rows", "int"), ("net_units", "Net units", "int"), ("abs_units", "Abs units", "int"),
    ("net_value", "Net value", "money"), ("gross_value", "Gross value", "money"), ("currency", "Currency", "text"),
)
CLASS_COLUMNS = (
    ("class", "Class", "text"), ("rows", "Rows", "int"), ("abs_units", "Abs units", "int"), ("net_units", "Net units", "int"),
    ("gross_value", "Gross value", "money"), ("net_value", "Net value", "money"), ("currency", "Currency", "text"),
)
TREND_COLUMNS = (
    ("run_date", "Run date", "date"), ("currency", "Currency", "text"), ("rows", "Discrepancies", "int"),
    ("gross_value", "Gross value", "money"), ("net_value", "Net value", "money"), ("unexplained_gross_value", "Unexplained gross value", "money"),
    ("new_rows", "New", "int"), ("new_gross_value", "New gross value", "money"),
    ("carried_rows", "Carried over", "int"), ("carried_gross_value", "Carried over gross value", "money"),
)
IRA_COLUMNS = (
    ("snapshot_date", "Run date", "date"), ("keys", "Keys", "int"), ("exact_keys", "Exact keys", "int"),
    ("within_tolerance_keys", "Keys within tolerance", "int"), ("ira_strict", "IRA strict", "pct"), ("ira_tolerance", "IRA within tolerance", "pct"),
)
AGING_COLUMNS = (
    ("sku", "SKU", "text"), ("description", "Description", "text"), ("location", "Location", "text"), ("other_system", "Other system", "text"),
    ("class", "Class", "text"), ("first_seen", "First seen", "date"), ("age_days", "Age (days)", "int"), ("age_bucket", "Age bucket", "text"),
    ("delta", "Delta", "int"), ("value_delta", "Value delta", "money"), ("currency", "Currency", "text"),
)
AGING_BUCKET_COLUMNS = (("age_bucket", "Age bucket (days)", "text"), ("rows", "Open discrepancies", "int"), ("gross_value", "Gross value", "money"))
OVERSELL_COLUMNS = (
    ("sku", "SKU", "text"), ("description", "Description", "text"), ("location", "Location", "text"), ("channel", "Channel", "text"),
    ("atp", "ATP", "int"), ("published", "Published", "int"), ("excess_units", "Excess units", "int"),
    ("excess_value", "Excess value", "money"), ("currency", "Currency", "text"), ("age_days", "Age (days)", "int"),
)
ALERT_COLUMNS = (
    ("rule", "Rule", "text"), ("subject", "Subject", "text"), ("severity", "Severity", "text"),
    ("threshold", "Threshold", "num"), ("observed", "Observed", "num"), ("message", "Message", "text"),
)
DQ_COLUMNS = (
    ("source", "Source", "text"), ("records_read", "Read", "int"), ("records_written", "Written", "int"),
    ("records_quarantined", "Quarantined", "int"), ("quarantine_rate", "Quarantine rate", "pct"), ("expectations", "Expectations", "int"),
    ("expectations_failed", "Expectations failed", "int"), ("critical_failed", "Critical failed", "int"), ("unexpected_rate", "Unexpected rate", "pct"),
)
QUARANTINE_COLUMNS = (("source", "Source", "text"), ("reason_code", "Quarantine reason", "text"), ("rows", "Records", "int"))
GLOSSARY_COLUMNS = (
    ("class", "Class", "text"), ("group", "Counts as", "text"), ("meaning", "Meaning", "wrap"), ("sign", "Sign of delta and value", "wrap"),
    ("aged", "Aged", "text"),
)
SHEETS = ("Summary", "Glossary", "Detail", "By location", "By location and class", "Trend", "Accuracy", "Aging", "Oversell", "Alerts",
          "Data quality")


def currency_format(currency: str | None) -> str:
    """Excel's number format of an amount in `currency` (negative in red).

    Examples:
      >>> currency_format("USD"), currency_format("CHF")
      ('"$"#,##0.00;[Red]-"$"#,##0.00', '#,##0.00 "CHF";[Red]-#,##0.00 "CHF"')
    """
    symbol = CURRENCY_SYMBOLS.get(currency or "")
    if symbol:
        return f'"{symbol}"#,##0.00;[Red]-"{symbol}"#,##0.00'
    suffix = f' "{currency}"' if currency else ""
    return f"#,##0.00{suffix};[Red]-#,##0.00{suffix}"


class _Book:
    """Write typed cells: numbers as numbers, dates as dates, text neutralized and as text."""

    def __init__(self, book: xlsxwriter.Workbook, *, currency: str | None, title: str):
        self.book, self.currency, self.title = book, currency, title
        self.fmt = {kind: book.add_format({"num_format": f}) for kind, f in NUMBER_FORMATS.items()}
        self.fmt.update(
            header=book.add_format({"bold": True, "bg_color": "#1f3a5f", "font_color": "#ffffff", "border": 1, "text_wrap": True, "valign": "top"}),
            title=book.add_format({"bold": True, "font_size": 14}),
            bold=book.add_format({"bold": True}),
            wrap=book.add_format({"text_wrap": True, "valign": "top"}),
            text=None,
        )
        self.money: dict[str | None, Any] = {}

    def money_fmt(self, currency: str | None):
        """The run's currency stands in for a row without one (a location with no discrepancies)."""
        currency = currency or self.currency
        if currency not in self.money:
            self.money[currency] = self.book.add_format({"num_format": currency_format(currency)})
        return self.money[currency]

    def sheet(self, name: str, *, header_row: int | None = 0):
        """A worksheet set up to print: landscape, one page wide, the header row on every page."""
        ws = self.book.add_worksheet(name)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)
        ws.set_header(f"&L{self.title}&R{name}")
        ws.set_footer("&CPage &P of &N")
        if header_row is not None:
            ws.repeat_rows(header_row)
        return ws

    def cell(self, ws, row: int, col: int, value: Any, kind: str, currency: str | None = None) -> None:
        fmt = self.money_fmt(currency) if kind == "money" else self.fmt[kind]
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            ws.write_blank(row, col, None, fmt)
        elif kind in ("text", "wrap"):
            ws.write_string(row, col, neutralize(str(value)), fmt)
        elif kind == "date":
            ws.write_datetime(row, col, dt.datetime.combine(value, dt.time()) if not isinstance(value, dt.datetime) else value.replace(tzinfo=None), fmt)
        else:
            ws.write_number(row, col, int(value) if kind == "int" else float(value), fmt)

    def table(self, ws, name: str, columns: Columns, rows: Sequence[dict], *, first_row: int = 0, first_col: int = 0, freeze: bool = True) -> int:
        """An Excel table (header, filters, banded rows) of `rows`; returns the next free row.

        The table is declared without data and every cell is then written by `cell`, so text stays
        text (`add_table(data=...)` would write through `write()`, which guesses types)."""
        last = first_row + max(len(rows), 1)  # a table needs a data row, even an empty one
        ws.add_table(first_row, first_col, last, first_col + len(columns) - 1, {
            "name": name, "style": TABLE_STYLE,
            "columns": [{"header": header, "header_format": self.fmt["header"]} for _, header, _ in columns],
        })
        for r, row in enumerate(rows, start=first_row + 1):
            for c, (key, _, kind) in enumerate(columns, start=first_col):
                self.cell(ws, r, c, row.get(key), kind, row.get("currency"))
        if freeze:
            ws.freeze_panes(first_row + 1, 0)
        for c, (key, header, kind) in enumerate(columns, start=first_col):
            longest = max([len(header)] + [len(str(row.get(key) or "")) for row in rows[:500]])
            ws.set_column(c, c, min(max(10, longest + 2), {"text": 60, "wrap": 70}.get(kind, 18)))
        return last + 2


def _summary(b: _Book, data: ReportData) -> None:
    ws = b.sheet("Summary", header_row=None)
    ws.set_column(0, 0, 40)
    ws.set_column(1, 1, 20)
    ws.set_column(2, 2, 90)
    ws.write_string(0, 0, f"Inventory discrepancy report {data.run_date}", b.fmt["title"])
    meta = [
        ("Run id", data.run["run_id"]), ("Run status", data.run["status"]), ("Record system (book)", data.record_system),
        ("Cut-off", f"{data.run_date} 23:59:59.999 {data.timezone}"), ("Config sha256", data.run["config_sha256"]),
        ("Lineage paths", "relative to the folder of the config file" if data.lineage_base else "as the batch recorded them"),
        ("Data Docs", f"{data.data_docs} (relative to this workbook's folder)" if data.data_docs else "not built for this output"),
    ]
    row = 2
    for label, value in meta:
        ws.write_string(row, 0, label, b.fmt["bold"])
        b.cell(ws, row, 1, value, "text")
        row += 1
    ws.write_string(row, 0, "Sign convention", b.fmt["bold"])
    ws.merge_range(row, 1, row, 2, "", b.fmt["wrap"])
    ws.write_string(row, 1, SIGN_CONVENTION, b.fmt["wrap"])
    ws.set_row(row, 48)  # Excel sizes no merged cell to its text
    row += 1
    row = _summary_totals(b, ws, data, row + 1)
    if data.changes:
        row = _summary_changes(b, ws, data, row)
    ws.write_string(row + 1, 0, "By class", b.fmt["bold"])
    b.table(ws, "ByClass", CLASS_COLUMNS, data.by_class, first_row=row + 2, freeze=False)


def _summary_totals(b: _Book, ws, data: ReportData, row: int) -> int:
    empty = {"currency": None, "rows": 0, "gross_value": 0.0, "net_value": 0.0, "unexplained_gross_value": 0.0, "unexplained_net_value": 0.0, "abs_units": 0}
    for t in data.totals or [empty]:
        cur = t["currency"] or data.currency
        for label, key, kind, note in (
            ("Discrepancies (excl. oversell risk)", "rows", "int", "rows with a difference at the cut-off; see the Glossary sheet"),
            ("Value at stake, gross Σ|value|", "gross_value", "money", "surpluses and shortages both count"),
            ("Value at stake, net Σ value", "net_value", "money", "other systems minus book, netted: negative = the book holds more"),
            ("Unexplained value, gross", "unexplained_gross_value", "money", "missing_in_other + missing_in_record + qty_mismatch"),
            ("Unexplained value, net", "unexplained_net_value", "money", "other systems minus book, netted"),
            ("Units at variance Σ|delta|", "abs_units", "int", "eaches"),
        ):
            tagged = cur and (kind == "money" or len(data.totals) > 1)
            ws.write_string(row, 0, label + (f" ({cur})" if tagged else ""), b.fmt["bold"])
            b.cell(ws, row, 1, t[key], kind, cur)
            ws.write_string(row, 2, note)
            row += 1
    figures = [("IRA strict", data.ira_today.get("ira_strict"), "pct"), ("IRA within tolerance", data.ira_today.get("ira_tolerance"), "pct"),
               ("Oversell risk units", sum(r["excess_units"] for r in data.oversell), "int"), ("Alerts fired", len(data.alerts), "int")]
    for label, value, kind in figures:
        ws.write_string(row, 0, label, b.fmt["bold"])
        b.cell(ws, row, 1, value, kind)
        row += 1
    return row + 1


def _summary_changes(b: _Book, ws, data: ReportData, row: int) -> int:
    ws.write_string(row, 0, f"Since the previous run date {data.previous_run_date}", b.fmt["bold"])
    row += 1
    for c in data.changes:
        cur = c["currency"] or data.currency
        for label, kind in (("New", "new"), ("Carried over", "carried"), ("Resolved", "resolved")):
            ws.write_string(row, 0, f"{label}: discrepancies, gross value ({cur})", b.fmt["bold"])
            b.cell(ws, row, 1, c[f"{kind}_gross_value"], "money", cur)
            ws.write_string(row, 2, f"{c[f'{kind}_rows']:,} discrepancies")
            row += 1
    return row


def write_xlsx(data: ReportData, path: str) -> None:
    """Write the workbook (SHEETS): Summary, Glossary, the detail, and one sheet per section."""
    book = xlsxwriter.Workbook(path, {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False, "remove_timezone": True})
    b = _Book(book, currency=data.currency, title=f"Inventory discrepancy report {data.run_date}")
    _summary(b, data)
    b.table(b.sheet("Glossary"), "Glossary", GLOSSARY_COLUMNS, glossary_rows())
    b.table(b.sheet("Detail"), "Detail", DETAIL_COLUMNS, data.detail)
    b.table(b.sheet("By location"), "ByLocation", LOCATION_COLUMNS, data.by_location)
    b.table(b.sheet("By location and class"), "ByLocationClass", LOCATION_CLASS_COLUMNS, data.by_location_class)
    b.table(b.sheet("Trend"), "ValueTrend", TREND_COLUMNS, [{**r, "currency": r["currency"] or data.currency} for r in data.value_trend])
    b.table(b.sheet("Accuracy"), "Accuracy", IRA_COLUMNS, data.ira_trend)
    ws = b.sheet("Aging")
    b.table(ws, "Aging", AGING_COLUMNS, data.aging_detail)
    b.table(ws, "AgingBuckets", AGING_BUCKET_COLUMNS, data.aging, first_col=len(AGING_COLUMNS) + 1)
    b.table(b.sheet("Oversell"), "Oversell", OVERSELL_COLUMNS, data.oversell)
    b.table(b.sheet("Alerts"), "Alerts", ALERT_COLUMNS, data.alerts)
    ws = b.sheet("Data quality")
    b.table(ws, "DataQuality", DQ_COLUMNS, data.dq)
    b.table(ws, "Quarantine", QUARANTINE_COLUMNS, data.quarantine, first_col=len(DQ_COLUMNS) + 1)
    book.close()
