"""Parse the values X12 and EDIFACT share (numbers, dates, times, ids); hold their shared tables and limits.

Every function here takes the raw element text exactly as written and either returns a Python
value or raises `EdiError` with a message naming the value; the mappings turn that into a
`bad_quantity` / `bad_date` problem for the one record, never an exception out of `parse_edi`.

Example:
    >>> parse_number("0012.50")
    12.5
    >>> x12_timestamp("20240131", "1405", "CT")
    '2024-01-31T14:05:00-06:00'
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from invrecon.transforms.edi.errors import EdiError

__all__ = [
    "LAYOUT_WHITESPACE",
    "MAX_SEGMENTS_PER_TRANSACTION",
    "DEFAULT_QUALIFIERS",
    "ID_TYPE_PREFERENCE",
    "choose_item_id",
    "edifact_timestamp",
    "parse_number",
    "same_control",
    "too_large",
    "x12_timestamp",
]

# DESIGN.md §5: EDI qualifier -> crosswalk id type; the one table the parser and the batch use. UC (U.P.C. shipping container code) is the
# implied qualifier we give the bare "U.P.C. case code" elements of W01/W07/W12/W19.
DEFAULT_QUALIFIERS: dict[str, str] = {
    "UP": "gtin", "UK": "gtin", "EN": "gtin", "UA": "gtin", "UC": "gtin", "UI": "gtin", "SRV": "gtin",
    "VN": "vendor_part", "VP": "vendor_part", "VA": "vendor_part", "VC": "vendor_part", "SA": "vendor_part",
    "BP": "buyer_part", "IN": "buyer_part", "CB": "buyer_part",
    "SK": "sku",
}

# Which id becomes `item_id` when a line carries several: the most global identifier first, so
# the crosswalk's first try is the one most likely to be in it. Ties keep file order.
ID_TYPE_PREFERENCE: tuple[str, ...] = ("gtin", "sku", "erp_material", "buyer_part", "vendor_part")

# X12 time codes (data element 623) that pin a UTC offset; ET/CT/MT/PT are local civil time and
# are resolved through the zone database because their offset depends on the date.
_FIXED_OFFSETS: dict[str, int] = {
    "UT": 0, "GM": 0, "Z": 0,
    "AS": -4 * 60, "AD": -3 * 60, "ES": -5 * 60, "ED": -4 * 60, "CS": -6 * 60, "CD": -5 * 60,
    "MS": -7 * 60, "MD": -6 * 60, "PS": -8 * 60, "PD": -7 * 60, "AK": -9 * 60, "HS": -10 * 60,
    "NS": -3 * 60 - 30, "ND": -2 * 60 - 30,
}
_CIVIL_ZONES: dict[str, tuple[str, int]] = {
    "AT": ("America/Halifax", -4 * 60), "ET": ("America/New_York", -5 * 60),
    "CT": ("America/Chicago", -6 * 60), "MT": ("America/Denver", -7 * 60),
    "PT": ("America/Los_Angeles", -8 * 60), "HT": ("Pacific/Honolulu", -10 * 60),
    "LT": ("", 0),  # "local time": no offset stated
}

# Characters a decimal (X12 R / EDIFACT n..) may contain besides digits.
# Whitespace that is layout, not data: around segments (line breaks, indentation) and before an
# interchange header. Not \x1c-\x1f, which can be delimiters; a tokenizer takes its delimiters out.
LAYOUT_WHITESPACE = " \t\r\n\x0b\x0c"
# The most segments one transaction (ST ... SE) or message (UNH ... UNT) may hold. A DC's
# whole 846 is tens of thousands of lines (two to four segments each); a partner with more
# splits the report over several transactions, as X12 and EDIFACT allow. A larger one is
# refused as `transaction_too_large` (its segments are counted, not kept), so one hostile
# transaction cannot hold the parser's memory (600k segments took 1.2 GB).
MAX_SEGMENTS_PER_TRANSACTION = 200_000
_NUMBER_EXTRA = frozenset("+-.,")


def too_large(what: str, start: int, count: int) -> str:
    """The message of a `transaction_too_large` problem (an X12 transaction or an EDIFACT message)."""
    limit = MAX_SEGMENTS_PER_TRANSACTION
    return (f"{what} at segment {start} has {count} segments; transactions of more than {limit} segments "
            "(MAX_SEGMENTS_PER_TRANSACTION) are not read")


def parse_number(text: str, *, decimal: str = ".") -> int | float:
    """Parse an X12 R / N0 or EDIFACT numeric value; integral values come back as `int`.

    Args:
      text: the element as written, e.g. ``"12"``, ``"-3.5"``, ``".25"``, ``"1,5"`` (EDIFACT).
      decimal: the decimal mark in force (EDIFACT UNA); ``","`` and ``"."`` are both accepted
        as the standards allow, so this only matters for documentation.

    Raises:
      EdiError: the text is empty or not a plain decimal number (``"1020A"``, ``"1e5"``).
    """
    if text.isdecimal():  # the overwhelmingly common case, kept cheap
        return int(text)
    s = text.strip()
    body = s[1:] if s[:1] in "+-" else s
    if not body or not set(body) <= set("0123456789.,") or (body.count(".") + body.count(",")) > 1:
        raise EdiError(f"{text!r} is not a number")
    if body.isdecimal():
        return int(s)
    value = float(s.replace(",", "."))
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def same_control(a: str, b: str) -> bool:
    """Compare two control numbers as numbers when both are digits, else as trimmed text.

    Example:
        >>> same_control("000003438", "3438"), same_control("XXX", "XXX ")
        (True, True)
    """
    a, b = a.strip(), b.strip()
    if a.isdecimal() and b.isdecimal():
        return int(a) == int(b)
    return a == b


def _date(text: str) -> dt.date:
    t = text.strip()
    if len(t) == 8 and t.isdecimal():
        return dt.date(int(t[:4]), int(t[4:6]), int(t[6:8]))
    if len(t) == 6 and t.isdecimal():  # YYMMDD, X12 before 4010: pivot at 50 like most translators
        yy = int(t[:2])
        return dt.date((1900 if yy >= 50 else 2000) + yy, int(t[2:4]), int(t[4:6]))
    raise ValueError(text)


def _time(text: str) -> dt.time:
    t = text.strip()
    if not t:
        return dt.time()
    if not t.isdigit() or len(t) not in (2, 4, 6, 7, 8):
        raise ValueError(text)
    return dt.time(int(t[:2]), int(t[2:4] or 0), int(t[4:6] or 0))


def _offset_minutes(code: str, moment: dt.datetime) -> int | None:
    code = code.strip().upper()
    if not code:
        return None
    if code in _FIXED_OFFSETS:
        return _FIXED_OFFSETS[code]
    if code.isdecimal() and 1 <= int(code) <= 24:  # 01..12 = UTC+1..+12, 13..24 = UTC-12..-1
        n = int(code)
        return n * 60 if n <= 12 else (n - 25) * 60
    if code in _CIVIL_ZONES:
        zone, standard = _CIVIL_ZONES[code]
        if not zone:
            return None
        try:
            from zoneinfo import ZoneInfo

            offset = moment.replace(tzinfo=ZoneInfo(zone)).utcoffset()
        except Exception:  # no zone database on this machine: fall back to standard time
            return standard
        return int(offset.total_seconds() // 60) if offset is not None else standard
    raise ValueError(code)


def _iso(moment: dt.datetime, offset: int | None) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if offset is None:
        return text
    sign = "+" if offset >= 0 else "-"
    return f"{text}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


# A feed repeats the same few dates (every 856 of a night's file ships "20261130"), and
# building a datetime, resolving a zone and formatting it is ~5 us; the result depends on
# the three strings only, so it is cached (bad values raise and are not cached).
@functools.lru_cache(maxsize=4096)
def x12_timestamp(date: str, time: str = "", zone: str = "") -> str:
    """Combine an X12 date (CCYYMMDD or YYMMDD), time (HHMM[SS[D[D]]]) and time code.

    Returns an ISO 8601 string ``YYYY-MM-DDTHH:MM:SS``, with a UTC offset only when `zone`
    states one (DTM04 / data element 623).

    Raises:
      EdiError: any part is malformed.
    """
    try:
        moment = dt.datetime.combine(_date(date), _time(time))
        return _iso(moment, _offset_minutes(zone, moment))
    except ValueError:
        raise EdiError(f"bad date/time {date!r} {time!r} {zone!r}".replace(" ''", "")) from None


# EDIFACT DTM format qualifiers (2379) -> how many leading characters are date / time.
_EDIFACT_FORMATS: dict[str, tuple[int, int]] = {
    "102": (8, 0), "203": (8, 4), "204": (8, 6), "101": (6, 0), "201": (6, 4),
}


def edifact_timestamp(value: str, fmt: str = "102") -> str:
    """Turn an EDIFACT DTM value and its format qualifier (102, 203, 204, 101, 201) into ISO.

    Formats with a time zone (303, 304...) keep only their date-time part: the zone
    suffix `Z`/`+hh` is honoured when present.

    Raises:
      EdiError: unknown format or malformed value.
    """
    fmt = fmt or "102"
    v = value.strip()
    zone = ""
    if fmt in ("303", "304") and len(v) > (12 if fmt == "303" else 14):
        cut = 12 if fmt == "303" else 14
        v, zone = v[:cut], v[cut:]
        fmt = "203" if fmt == "303" else "204"
    if fmt not in _EDIFACT_FORMATS:
        raise EdiError(f"unsupported DTM format {fmt!r} for {value!r}")
    dlen, tlen = _EDIFACT_FORMATS[fmt]
    if len(v) != dlen + tlen or not v.isdigit():
        raise EdiError(f"bad date/time {value!r} for format {fmt}")
    try:
        moment = dt.datetime.combine(_date(v[:dlen]), _time(v[dlen:]))
        offset = None
        if zone:
            offset = 0 if zone.upper() in ("Z", "UTC") else int(zone[:3]) * 60
        return _iso(moment, offset)
    except ValueError:
        raise EdiError(f"bad date/time {value!r} for format {fmt}") from None


def choose_item_id(
    ids: Sequence[Mapping[str, str | None]], qualifiers: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """Pick the (id, qualifier) that becomes `item_id` from a line's ids.

    The id whose qualifier maps to the most preferred id type (`ID_TYPE_PREFERENCE`) wins; ids
    whose qualifier `qualifiers` does not know come last; ties keep file order.

    Example:
        >>> choose_item_id([{"qualifier": "VP", "id": "A1"}, {"qualifier": "UP", "id": "0123"}],
        ...                DEFAULT_QUALIFIERS)
        ('0123', 'UP')
    """
    if not ids:
        return None, None
    best = ids[0]
    if len(ids) > 1:
        rank = {t: i for i, t in enumerate(ID_TYPE_PREFERENCE)}
        unknown = len(rank) + 1

        def score(entry: Mapping[str, str | None]) -> int:
            kind = qualifiers.get(entry["qualifier"] or "")
            return unknown if kind is None else rank.get(kind, len(rank))

        best = min(ids, key=score)
    return best["id"], best["qualifier"]
