"""The parser's error type and the problem notes that become `{"kind": "error"}` dicts.

`EdiError` is raised only inside the package (a value that does not parse, a header that cannot
be read); `parse_edi` catches it at the smallest unit that can still be skipped (a record, a
transaction, an interchange) and yields an error dict instead, so bad data never raises out.

Error codes are stable snake_case strings (`CODES`); downstream quarantine keys on them.
"""

from __future__ import annotations

import dataclasses

__all__ = ["CODES", "EdiError", "Problem"]

# Stable error codes, with what each means. Tests assert the set is closed so a new code is a
# deliberate, documented change (quarantine reason codes are keyed on these).
CODES: dict[str, str] = {
    "not_edi": "the data is neither an X12 interchange (ISA) nor EDIFACT (UNA/UNB)",
    "bad_isa": "the ISA header is malformed (width, delimiters, tag)",
    "bad_una": "the EDIFACT UNA service string advice is malformed",
    "bad_header": "a GS/ST/UNB/UNH header is malformed (element count, length)",
    "bad_control_number": "a control number is not of the form the standard requires",
    "control_mismatch": "a trailer's control number differs from its header's",
    "count_mismatch": "a trailer's count (SE01, GE01, IEA01, UNT01, UNZ01) is wrong",
    "missing_trailer": "a header (ISA, GS, ST, UNB, UNH) has no matching trailer",
    "missing_header": "a trailer or segment appears outside the envelope it needs",
    "duplicate_control": "a control number repeats within its enclosing envelope",
    "unexpected_segment": "a segment sits between envelopes, outside any transaction",
    "junk": "bytes that are not segments (between or after interchanges)",
    "unsupported_set": "a well-formed transaction of a set this pipeline does not map (info)",
    "no_records": "a supported transaction that carried no record this pipeline extracts (info)",
    "bad_quantity": "a quantity is missing or not a number",
    "bad_uom": "a unit of measure code is malformed",
    "bad_date": "a date or time is malformed",
    "missing_item_id": "a line has a quantity but no item identifier",
    "transaction_too_large": "a transaction or message has more segments than MAX_SEGMENTS_PER_TRANSACTION",
}


class EdiError(Exception):
    """A problem the parser found in the data (never a bug in the caller's arguments)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while mapping a transaction, before it becomes an error dict.

    Attributes:
      code: a key of `CODES`.
      message: names the segment / element / value at fault.
      segment: 1-based position of the offending segment in the file.
      tag: the segment tag (for 997 AK3).
      element: 1-based element position in the segment (for 997 AK4), if known.
      value: the offending value (for 997 AK4 copy of bad data element), if any.
      control: the interchange / group / transaction control numbers in force, if known.
    """

    code: str
    message: str
    segment: int | None = None
    tag: str | None = None
    element: int | None = None
    value: str | None = None
    control: dict | None = None
