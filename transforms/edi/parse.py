"""`parse_edi` / `parse_edi_stream`: bytes or a binary file in, parse-edi dicts (and 997s) out (DESIGN §3).

The standard is sniffed from the first non-blank characters: `ISA` (or an ISA-shaped header
with another tag, reported as `bad_isa`) is X12, `UNA` / `UNB` is EDIFACT, anything else is one
`not_edi` error. Everything streams: bytes are read in chunks, decoded, tokenized and mapped
one transaction at a time, so memory does not grow with the file. This module joins the
layers (tokenizers, envelope walkers, set mappers, the 997 collector); none of them imports it.

Example:
    >>> list(parse_edi(b"hello", file="x.edi"))[0]["code"]
    'not_edi'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import BinaryIO

from invrecon.transforms.edi.ack import AckCollector
from invrecon.transforms.edi.decode import CHUNK_SIZE, decode_chunks, read_chunks
from invrecon.transforms.edi.edifact import Message, RejectedMessage, edifact_batches
from invrecon.transforms.edi.edifact import walk as walk_edifact
from invrecon.transforms.edi.edifact_sets import map_message
from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import MapContext, error_dict
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS, LAYOUT_WHITESPACE
from invrecon.transforms.edi.x12 import looks_like_isa, x12_batches
from invrecon.transforms.edi.x12_envelope import GroupEnd, RejectedTransaction, Transaction
from invrecon.transforms.edi.x12_envelope import walk as walk_x12
from invrecon.transforms.edi.x12_sets import stream_transaction

__all__ = ["build_997", "parse_edi", "parse_edi_stream", "parse_text", "sniff"]

# How many characters the sniffer looks at; an ISA is 106, UNA+UNB well under this.
_SNIFF = 128


def sniff(head: str) -> str | None:
    """Return "x12", "edifact" or None for the first characters of a file (blanks stripped)."""
    h = head.lstrip(LAYOUT_WHITESPACE)
    if h.startswith("ISA") and len(h) > 3 and not h[3].isalnum() and h[3] not in LAYOUT_WHITESPACE:
        return "x12"
    if h[:3] in ("UNA", "UNB") and len(h) > 3 and not h[3].isalnum():
        return "edifact"
    if looks_like_isa(h):
        return "x12"
    return None


def _x12(texts: Iterable[str], ctx: MapContext, acks: AckCollector | None) -> Iterator[list[dict]]:
    """X12 output, one iterable per transaction or envelope event (flattened by `parse_text`)."""
    file = ctx.file
    for ev in walk_x12(x12_batches(texts)):
        kind = type(ev)
        if kind is Transaction:
            # The records stream straight from the mapper to the caller (`chain` exhausts one
            # iterable before asking for the next, so `problems` is complete below).
            problems: list[Problem] = []
            yield stream_transaction(ev, ctx, problems)
            if acks is not None:
                acks.transaction(ev, problems)
            if ev.problems or problems:
                yield [error_dict(p, file=file, control=ev.control)
                       for p in (*ev.problems, *problems)]
        elif kind is RejectedTransaction:
            if acks is not None:
                acks.transaction(ev, [])
            yield [error_dict(p, file=file, control=ev.control) for p in ev.problems]
        elif kind is GroupEnd:
            if acks is not None:
                acks.group_end(ev)
            yield [error_dict(p, file=file, control=p.control) for p in ev.problems]
        else:
            yield [error_dict(ev, file=file, control=ev.control)]


def _edifact(texts: Iterable[str], ctx: MapContext) -> Iterator[dict]:
    """EDIFACT output: the records of each mapped message, then its errors; envelope errors."""
    file = ctx.file
    for ev in walk_edifact(edifact_batches(texts)):
        if isinstance(ev, Message):
            records, problems = map_message(ev, ctx)
            yield from records
            for p in ev.problems + problems:
                yield error_dict(p, file=file, control=ev.control)
        elif isinstance(ev, RejectedMessage):
            for p in ev.problems:
                yield error_dict(p, file=file, control=ev.control)
        else:
            yield error_dict(ev, file=file, control=ev.control)


def _parse_parts(
    texts: Iterable[str], *, file: str, qualifiers: Mapping[str, str] | None, acks: AckCollector | None = None
) -> Iterator[Iterable[dict]]:
    source = iter(texts)
    head = ""
    for piece in source:
        head += piece
        if len(head.lstrip(LAYOUT_WHITESPACE)) >= _SNIFF:
            break
    standard = sniff(head)
    merged = {**DEFAULT_QUALIFIERS, **(qualifiers or {})}
    ctx = MapContext(file=file, qualifiers=merged)

    def chunks() -> Iterator[str]:
        yield head
        yield from source

    if standard == "x12":
        yield from _x12(chunks(), ctx, acks)
    elif standard == "edifact":
        yield _edifact(chunks(), ctx)
    else:
        shown = head.lstrip(LAYOUT_WHITESPACE)[:20]
        message = "empty file" if not shown else f"not an X12 or EDIFACT interchange: starts {shown!r}"
        yield [error_dict(Problem("not_edi", message, segment=None), file=file, control=None)]


def parse_text(
    texts: Iterable[str], *, file: str, qualifiers: Mapping[str, str] | None = None, acks: AckCollector | None = None
) -> Iterator[dict]:
    """Parse decoded text chunks (the layer under `parse_edi_stream`).

    Nothing is read until the first record is asked for. The work is done a transaction at a
    time and handed out through `itertools.chain`, so a record costs one step of a C iterator
    rather than a resume of every generator between the mapper and the caller.
    """
    return chain.from_iterable(_parse_parts(texts, file=file, qualifiers=qualifiers, acks=acks))


def _slices(data: bytes, size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def parse_edi(
    data: bytes, *, file: str, qualifiers: Mapping[str, str] | None = None, acks: AckCollector | None = None
) -> Iterator[dict]:
    """Yield one dict per extracted record or problem, in the parse-edi format of DESIGN.md §3.

    Never raises on bad data: problems come out as ``{"kind": "error", ...}`` dicts with a
    stable `code` (see `transforms.edi.errors.CODES`).

    Args:
      data: the file's bytes.
      file: the name to put in every dict's `file` field.
      qualifiers: EDI id qualifier -> id type overrides (e.g. ``{"VN": "sku"}``), merged over
        `DEFAULT_QUALIFIERS`; they decide which of a line's ids becomes `item_id`.
      acks: an `AckCollector` to fill with the file's 997s as it is parsed (X12 only): one
        pass gives the records and the acknowledgements.
    """
    return parse_text(decode_chunks(_slices(data, CHUNK_SIZE)), file=file, qualifiers=qualifiers, acks=acks)


def parse_edi_stream(
    fileobj: BinaryIO,
    *,
    file: str,
    qualifiers: Mapping[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    acks: AckCollector | None = None,
) -> Iterator[dict]:
    """Like `parse_edi`, reading `fileobj` (binary) in `chunk_size` blocks as it goes."""
    if chunk_size <= 0:
        raise ValueError("`chunk_size` must be > 0")
    return parse_text(decode_chunks(read_chunks(fileobj, chunk_size=chunk_size)), file=file,
                      qualifiers=qualifiers, acks=acks)


def build_997(data: bytes, *, file: str, now: dt.datetime | None = None) -> list[str]:
    """Return one 997 interchange text per functional group received in `data` (X12 only).

    Args:
      data: the received file's bytes.
      file: the file name (for the mapping context; 997s do not carry it).
      now: the date/time to stamp on the acknowledgements (default: now, UTC).

    Returns:
      The 997s in group order; [] when the data holds no readable X12 group.
    """
    acks = AckCollector(now=now)
    for _ in parse_edi(data, file=file, acks=acks):
        pass
    return acks.texts
