"""EDI ingestion: X12 and EDIFACT files to parse-edi records and errors (DESIGN.md §3, §5).

Reads partners' files as they really are (any delimiters, BOMs, CR/LF, indentation, several
interchanges per file, broken envelopes) and yields plain dicts, one per extracted record
(`position`, `in_transit`, `movement`) or problem (`error`). Bad data never raises: a broken
transaction yields an error with its control numbers and no records; the rest still loads.

Run locally:
    invrecon parse-edi path/to/file.edi            # JSON Lines on stdout

Example:
    >>> from transforms.edi import parse_edi
    >>> [r["kind"] for r in parse_edi(b"not edi", file="x")]
    ['error']
"""

from __future__ import annotations

from invrecon.transforms.edi.ack import AckCollector
from invrecon.transforms.edi.errors import CODES, EdiError
from invrecon.transforms.edi.parse import build_997, parse_edi, parse_edi_stream
from invrecon.transforms.edi.records import RECORD_FIELDS, RECORD_KINDS
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS

__all__ = [
    "CODES",
    "DEFAULT_QUALIFIERS",
    "RECORD_FIELDS",
    "RECORD_KINDS",
    "AckCollector",
    "EdiError",
    "build_997",
    "parse_edi",
    "parse_edi_stream",
]
