"""What every rendering of the report shares: the detail columns, the class glossary, the sign
convention and the spreadsheet-formula guard."""

from __future__ import annotations

from invrecon.schemas import EXPLAINED, NOT_AGED, UNEXPLAINED

__all__ = [
    "CLASS_COLORS", "CURRENCY_SYMBOLS", "DETAIL_COLUMNS", "FORMATS", "FORMULA_PREFIXES", "GLOSSARY", "SIGN_CONVENTION", "TOP_N",
    "TREND_RUNS", "class_group", "glossary_rows", "neutralize",
]

FORMATS = ("html", "xlsx", "csv")
# Run dates shown in the trends: a month of nightly runs reads well on one chart.
TREND_RUNS = 30
TOP_N = 20
# First characters a spreadsheet reads as the start of a formula (OWASP CSV injection), plus the
# full-width forms some locales also accept.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
CLASS_COLORS = {
    "missing_in_other": "#c0392b",
    "missing_in_record": "#e67e22",
    "qty_mismatch": "#8e44ad",
    "within_tolerance": "#b7950b",
    "timing": "#2471a3",
    "in_transit": "#17a589",
    "oversell_risk": "#6e2c00",
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

# One sentence finance reads before any figure (DESIGN.md §6.3 and §6.5: delta = qty_S − qty_R).
SIGN_CONVENTION = (
    "delta = the other system's quantity − the book's (record system) quantity at the cut-off; value = delta × unit cost. "
    "Negative: the book holds more than the other system counts (e.g. shrink, a missed shipment); positive: the other system "
    "counts more than the book. Gross value Σ|value| never nets a surplus against a shortage; net value Σ value does."
)
# class -> (meaning, sign of delta). Order: the unexplained classes first, as finance signs them off.
GLOSSARY = {
    "missing_in_other": ("The book has stock; the other system has no record of it at a location it reports for.",
                         "negative (book holds it, the other system does not)"),
    "missing_in_record": ("The other system has stock; the book has no record of it.", "positive (the book lacks it)"),
    "qty_mismatch": ("Both systems have the item; after rolling both to the cut-off they differ by more than the tolerance.",
                     "either"),
    "within_tolerance": ("They differ, by no more than the configured tolerance. Accepted: not unexplained, not aged.", "either"),
    "timing": ("The figures agree at the cut-off once movements between the two snapshots are applied: fully explained.",
               "delta 0, value 0 (raw delta shows the timing gap)"),
    "in_transit": ("The difference equals goods shipped and not yet received, into or out of the location: explained.", "either"),
    "oversell_risk": ("A sales channel publishes more than available-to-promise (book on hand − reserved − safety stock). "
                      "Exposure, not a book difference: left out of value at stake.", "positive: the excess units"),
}


def class_group(klass: str) -> str:
    """How a class counts: unexplained, explained, accepted (within tolerance) or exposure.

    Examples:
      >>> class_group("qty_mismatch"), class_group("timing"), class_group("within_tolerance"), class_group("oversell_risk")
      ('unexplained', 'explained', 'accepted', 'exposure')
    """
    if klass in UNEXPLAINED:
        return "unexplained"
    if klass in EXPLAINED:
        return "explained"
    return "exposure" if klass == "oversell_risk" else "accepted"


def glossary_rows() -> list[dict]:
    """The glossary as rows (class, group, meaning, sign, aged) for the HTML and the Glossary sheet."""
    return [
        {"class": c, "group": class_group(c), "meaning": meaning, "sign": sign, "aged": "no" if c in NOT_AGED else "yes"}
        for c, (meaning, sign) in GLOSSARY.items()
    ]


# (column, header, kind) of the detail sheet and CSV; kind picks the cell format.
DETAIL_COLUMNS = (
    ("snapshot_date", "Snapshot date", "date"),
    ("sku", "SKU", "text"),
    ("description", "Description", "text"),
    ("category", "Category", "text"),
    ("abc_class", "ABC", "text"),
    ("location", "Location", "text"),
    ("location_type", "Location type", "text"),
    ("record_system", "Record system", "text"),
    ("other_system", "Other system", "text"),
    ("class", "Class", "text"),
    ("record_qty", "Record qty", "int"),
    ("other_qty", "Other qty", "int"),
    ("delta", "Delta", "int"),
    ("raw_delta", "Raw delta", "int"),
    ("tolerance", "Tolerance", "num"),
    ("explained_qty", "Explained qty", "int"),
    ("unit_cost", "Unit cost", "money"),
    ("value_delta", "Value delta", "money"),
    ("currency", "Currency", "text"),
    ("first_seen", "First seen", "date"),
    ("age_days", "Age (days)", "int"),
    ("since_previous", "New or carried over", "text"),
    ("record_lineage", "Record lineage", "text"),
    ("other_lineage", "Other lineage", "text"),
)


def neutralize(text: str | None) -> str | None:
    """Make `text` inert in a spreadsheet: prefix a `'` when it would start a formula.

    Examples:
      >>> neutralize('=HYPERLINK("http://x","y")')
      '\\'=HYPERLINK("http://x","y")'
      >>> neutralize("SKU-1"), neutralize(None)
      ('SKU-1', None)
    """
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text
