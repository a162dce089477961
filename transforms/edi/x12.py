"""Stream an ANSI X12 file into segments and check its envelopes (ISA/GS/ST ... SE/GE/IEA).

Two layers, both streaming so memory stays flat in the file size:

* `x12_batches` turns decoded text chunks into lists of segments (a segment is its text, tag
  first, not yet split into elements). Delimiters come from each ISA by character position
  (ISA is fixed width: element separator at 3, component at 104, segment terminator at 105),
  so multi-byte terminators (`…`, `Ö`) work once the bytes are decoded. CR/LF and indentation
  around segments are dropped. Splitting is `str.split` on whole chunks, never per character.
* `walk` follows the envelopes, numbers every segment (1-based, the ISA is 1) and yields
  `Transaction`s whose ST02/SE02 and SE01 agree, `RejectedTransaction`s (with the reasons)
  for the others, envelope `Problem`s and a `GroupEnd` per GS (for the 997).

Control numbers are compared as numbers (IEA02 `3438` matches ISA13 `000003438`).

Example:
    >>> text = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *"
    ...         "240101*1200*^*00501*000000001*0*P*>~GS*IB*A*B*20240101*1200*1*X*005010~"
    ...         "ST*846*0001~BIA*00*MM*R*20240101~SE*3*0001~GE*1*1~IEA*1*000000001~")
    >>> [type(e).__name__ for e in walk(x12_batches([text]))]
    ['Transaction', 'GroupEnd']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from itertools import repeat

from invrecon.transforms.edi import values
from invrecon.transforms.edi.errors import EdiError, Problem
from invrecon.transforms.edi.values import LAYOUT_WHITESPACE, same_control

__all__ = [
    "GroupEnd",
    "IsaHeader",
    "RejectedTransaction",
    "Transaction",
    "X12Delimiters",
    "looks_like_isa",
    "read_isa",
    "split_element",
    "walk",
    "x12_batches",
]

# ISA is fixed width: the element separator sits at these character offsets and the ISA is 106
# characters including its terminator. Offsets are in decoded characters, not bytes, which is
# why a UTF-8 apostrophe in ISA08 does not shift the terminator.
ISA_SEPARATORS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
ISA_LENGTH = 106
# A damaged ISA is searched for its 16 separators within this many characters before giving up.
_ISA_SEARCH = 256
# ISA11 is a repetition separator from version 00402 on; before that it is the standards id 'U'.
_REPETITION_FROM_VERSION = "00402"
# Refill the buffer from the source when it holds less than this many characters.
_REFILL_BELOW = 1 << 16
# Characters per batch of segments: ~2,000 segments, few enough that the mapper reads them
# while the tokenizer's work is still in the CPU cache (1 MiB batches were ~5% slower).
_BATCH = 1 << 15
# Envelope tags the walker handles itself; everything else is transaction content.
_ENVELOPE = frozenset(("ISA", "IEA", "GS", "GE", "ST", "SE"))
# Hierarchy of the control segments, for "a trailer closes what was left open".
_TRAILER_OF = {"ST": "SE", "GS": "GE", "ISA": "IEA"}


@dataclasses.dataclass(frozen=True, slots=True)
class X12Delimiters:
    """The delimiters of one interchange.

    Attributes:
      element: ISA04 separator (the character after 'ISA').
      component: ISA16, or None when the ISA does not give a usable one.
      segment: the segment terminator (the character after ISA16).
      repetition: ISA11 when the version allows a repetition separator and it is not
        alphanumeric, else None.
    """

    element: str
    component: str | None
    segment: str
    repetition: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class IsaHeader:
    """A parsed ISA: its 16 elements (ISA01..ISA16), delimiters and what was odd about it."""

    elements: list[str]
    delimiters: X12Delimiters
    consumed: int
    problems: tuple[Problem, ...] = ()


@dataclasses.dataclass(slots=True)
class Group:
    """An open or closed functional group (GS ... GE), as the walker and the 997 see it."""

    header: list[str]
    start: int
    interchange: str | None
    delimiters: X12Delimiters | None
    transactions: int = 0
    controls: set[str] = dataclasses.field(default_factory=set)
    isa: list[str] | None = None

    @property
    def functional_id(self) -> str:
        return _at(self.header, 1)

    @property
    def control(self) -> str:
        return _at(self.header, 6)

    @property
    def version(self) -> str:
        return _at(self.header, 8)


@dataclasses.dataclass(slots=True)
class Transaction:
    """A transaction whose envelope checks passed; `body` is the segments between ST and SE.

    `body[i]` is segment number `start + 1 + i` of the file (`start` is the ST's number), as
    text without layout whitespace: mappers split it with `element` (most segments are read
    once, so splitting them here would only build lists to throw away).
    """

    set_id: str
    control: dict[str, str | None]
    start: int
    body: list[str]
    group: Group | None
    delimiters: X12Delimiters | None
    problems: list[Problem] = dataclasses.field(default_factory=list)
    # Segments counted but not kept once the body passed MAX_SEGMENTS_PER_TRANSACTION.
    dropped: int = 0

    @property
    def element(self) -> str:
        """The element separator to split `body` segments with."""
        return self.delimiters.element if self.delimiters is not None else "*"


@dataclasses.dataclass(slots=True)
class RejectedTransaction:
    """A transaction whose envelope is broken: no records come from it, only `problems`."""

    set_id: str
    control: dict[str, str | None]
    start: int
    group: Group | None
    problems: list[Problem]


@dataclasses.dataclass(slots=True)
class GroupEnd:
    """A functional group was closed (by GE, by a new GS/IEA, or by the end of the data)."""

    group: Group
    problems: list[Problem]
    included: int | None


def too_large(what: str, start: int, count: int) -> str:
    """The message of a `transaction_too_large` problem."""
    limit = values.MAX_SEGMENTS_PER_TRANSACTION
    return (f"{what} at segment {start} has {count} segments; transactions of more than {limit} segments "
            "(MAX_SEGMENTS_PER_TRANSACTION) are not read")


def _word_char(c: str) -> bool:
    """ASCII letters and digits cannot be delimiters (they occur in data); `Ö` or `…` can."""
    return c.isascii() and c.isalnum()


def _at(seg: list[str], i: int) -> str:
    return seg[i] if i < len(seg) else ""


def looks_like_isa(text: str) -> bool:
    """Whether `text` starts with an ISA-shaped header, whatever its tag (for `bad_isa`)."""
    if len(text) < ISA_LENGTH - 1:
        return False
    sep = text[3]
    if _word_char(sep) or sep in LAYOUT_WHITESPACE:
        return False
    return sum(text[p] == sep for p in ISA_SEPARATORS) >= 14


def _check_delimiters(element: str, component: str | None, segment: str) -> None:
    if _word_char(segment) or segment == element or segment == component:
        raise EdiError(f"segment terminator {segment!r} is not usable")
    if component is not None and (_word_char(component) or component == element):
        raise EdiError(f"component separator {component!r} is not usable")


def read_isa(text: str) -> IsaHeader:
    """Parse the ISA at the start of `text` and derive the interchange delimiters.

    A fixed-width ISA is read by position. A damaged one (padded or unpadded ids) is read by
    counting its 16 element separators, with a `bad_isa` problem saying which elements have
    the wrong width; a stray separator in place of ISA16 leaves the component separator unknown.

    Raises:
      EdiError: `text` is not an ISA, or its delimiters are unusable.
    """
    if not text.startswith("ISA") or len(text) < 4:
        raise EdiError(f"interchange header starts with {text[:3]!r}, expected ISA")
    sep = text[3]
    if _word_char(sep) or sep in LAYOUT_WHITESPACE:
        raise EdiError(f"ISA element separator {sep!r} is not usable")
    problems: list[Problem] = []
    if len(text) >= ISA_LENGTH and all(text[p] == sep for p in ISA_SEPARATORS):
        bounds = list(ISA_SEPARATORS) + [104]
        elements = [text[bounds[i] + 1 : bounds[i + 1]] for i in range(15)] + [text[104]]
        component: str | None = text[104]
        end = 105
    else:
        cuts = [3]
        for _ in range(15):
            p = text.find(sep, cuts[-1] + 1, _ISA_SEARCH)
            if p < 0:
                raise EdiError("ISA does not have 16 elements")
            cuts.append(p)
        elements = [text[cuts[i] + 1 : cuts[i + 1]] for i in range(15)]
        last = cuts[15]
        if last + 2 >= len(text):
            raise EdiError("ISA is truncated")
        component = text[last + 1]
        end = last + 2
        if component == sep:  # ISA16 empty: a stray separator sits where it should be
            component = None
        elements.append(component or "")
        if end >= len(text):
            raise EdiError("ISA has no segment terminator")
        wrong = [
            f"ISA{i + 1:02d} is {len(e)} characters, not {w}"
            for i, (e, w) in enumerate(zip(elements, ISA_WIDTHS))
            if len(e) != w and i < 15
        ]
        if component is None:
            wrong.append("ISA16 (component separator) is empty")
        problems.append(
            Problem("bad_isa", f"ISA is {end + 1} characters, not {ISA_LENGTH}: " + "; ".join(wrong))
        )
    if end >= len(text):
        raise EdiError("ISA has no segment terminator")
    segment = text[end]
    _check_delimiters(sep, component, segment)
    rep_char, version = elements[10], elements[11]
    repetition = None
    if (
        version >= _REPETITION_FROM_VERSION
        and not _word_char(rep_char)
        and not rep_char in LAYOUT_WHITESPACE
        and rep_char not in (sep, component, segment)
    ):
        repetition = rep_char
    return IsaHeader(
        elements=elements,
        delimiters=X12Delimiters(sep, component, segment, repetition),
        consumed=end + 1,
        problems=tuple(problems),
    )


def split_element(value: str, delimiters: X12Delimiters) -> list[list[str]]:
    """Split one element into repetitions, then each repetition into components.

    Example:
        >>> d = X12Delimiters("*", ":", "~", "^")
        >>> split_element("A^B:C", d)
        [['A'], ['B', 'C']]
    """
    reps = value.split(delimiters.repetition) if delimiters.repetition else [value]
    comp = delimiters.component
    return [r.split(comp) if comp else [r] for r in reps]


def _find_isa(text: str, start: int = 0) -> int:
    """Index of the next 'ISA' that starts a segment-looking header, or -1."""
    i = text.find("ISA", start)
    while i >= 0:
        after = text[i + 3 : i + 4]
        if after and not _word_char(after) and after not in LAYOUT_WHITESPACE and (
            i == 0 or not _word_char(text[i - 1])
        ):
            return i
        i = text.find("ISA", i + 1)
    return -1


def x12_batches(chunks: Iterable[str]) -> Iterator[list[str] | IsaHeader | Problem]:
    """Yield an `IsaHeader` per interchange, then its segments in batches, from text chunks.

    A batch is a list of segment texts (layout whitespace stripped, empty segments dropped).
    It never spans an IEA, so every batch is read with the delimiters of the last header.
    Text that is not an interchange (junk between interchanges, a non-ISA header) yields one
    `Problem` per stretch and is skipped up to the next ISA.
    """
    source = iter(chunks)
    buf = ""
    at = 0  # where the unread text starts in buf (the delimited loop below moves it)
    eof = False
    delims: X12Delimiters | None = None
    strip = LAYOUT_WHITESPACE
    line_break = ""  # the line break characters that are layout (not delimiters) here

    def read() -> None:
        nonlocal buf, eof
        for piece in source:
            if piece:
                buf += piece
                return
        eof = True

    while True:
        if delims is None:
            buf = buf.lstrip(LAYOUT_WHITESPACE)
            while not eof and len(buf) < _ISA_SEARCH:
                read()
                buf = buf.lstrip(LAYOUT_WHITESPACE)
            if not buf:
                return
            if buf.startswith("ISA") and len(buf) > 3 and not _word_char(buf[3]):
                try:
                    header = read_isa(buf)
                except EdiError as exc:
                    yield Problem("bad_isa", str(exc))
                    buf = buf[3:]
                else:
                    delims = header.delimiters
                    strip = "".join(c for c in LAYOUT_WHITESPACE if c not in (
                        delims.element, delims.component, delims.repetition))
                    line_break = "".join(c for c in "\r\n" if c in strip)
                    buf = buf[header.consumed :]
                    yield header
                    continue
            elif looks_like_isa(buf):
                yield Problem("bad_isa", f"interchange header tag is {buf[:3]!r}, not 'ISA'")
                buf = buf[3:]
            else:
                yield Problem("junk", f"text that is not an interchange: {buf[:40]!r}")
            # Skip to the next ISA, reading on as needed (keep a tail that could start one).
            while True:
                i = _find_isa(buf)
                if i >= 0:
                    buf = buf[i:]
                    break
                if eof:
                    return
                buf = buf[-4:]
                read()
            continue

        term, elem = delims.segment, delims.element
        # Read only when the buffer has run low: after an IEA the rest of the last chunk is
        # still here, and reading on regardless would grow the buffer by a chunk per interchange.
        if not eof and (len(buf) - at < _REFILL_BELOW or buf.find(term, at) < 0):
            buf, at = buf[at:], 0
            read()
            if not eof and term not in buf:
                continue
        # Hand out about _BATCH characters at a time, cut after the interchange's IEA (the next
        # one may change delimiters) or after a terminator (the tail is an incomplete segment;
        # it waits for more text). Small batches are mapped while their segments are still in
        # the CPU cache; `at` walks the buffer so it is not copied for every batch.
        limit = at + _BATCH
        end = _iea_end(buf, term, elem, strip, eof, at, limit)
        interchange_done = end >= 0
        if not interchange_done:
            end = buf.rfind(term, at, limit) + 1 if len(buf) > limit else 0
            if end <= at:  # the rest fits in one batch, or a segment is longer than _BATCH
                end = len(buf) if eof else buf.rfind(term, at) + 1
        # The line break after the cut terminator goes with this batch (it is layout the next
        # segment would strip anyway), so one segment per line ends in a whole terminator+break.
        while end < len(buf) and buf[end] in line_break:
            end += 1
        text = buf[at:end]
        at = end
        # One C-level split per batch; segments stay strings (the walker and the mappers split
        # only what they read) because a list per segment is what made this loop slow. map and
        # filter strip and drop empty segments without a bytecode loop.
        batch = list(filter(None, map(str.strip, _split_segments(text, term, line_break),
                                      repeat(strip))))
        del text
        if batch:
            yield batch
        if interchange_done:
            buf, at = buf[at:], 0
            delims = None
            continue
        if eof and at >= len(buf):
            return


def _split_segments(text: str, term: str, line_break: str) -> list[str]:
    """`text.split(term)`, with the line break after each terminator dropped when there is one.

    One segment per line is the usual layout. When every terminator is followed by the same
    line break (then splitting on both gives exactly count(term) + 1 parts), splitting on
    terminator + line break leaves segments that strip returns as they are instead of copying
    each one; the break is layout the caller strips anyway, so the segments are the same.
    """
    k = text.find(term) + len(term)
    if k and line_break:
        layout = "\r\n" if text.startswith("\r\n", k) else text[k : k + 1]
        if layout and all(c in line_break for c in layout):
            parts = text.split(term + layout)
            if len(parts) == text.count(term) + 1:
                return parts
    return text.split(term)


def _iea_end(buf: str, term: str, elem: str, strip: str, eof: bool, start: int = 0,
             stop: int | None = None) -> int:
    """Index just past the first complete IEA segment in `buf[start:]`, or -1 when there is none.

    `start` is a segment boundary; only an IEA that begins before `stop` is looked for. An IEA
    counts when only layout whitespace precedes it in its segment and the tag stands alone
    (followed by the element separator, the terminator or whitespace). Before the end of the
    data, a segment without its terminator is not complete; at the end, the unterminated last
    segment is.
    """
    limit = len(buf) if stop is None else stop
    at = buf.find("IEA", start, limit)
    while at >= 0:
        before = buf.rfind(term, start, at)
        seg_start = start if before < 0 else before + 1
        if seg_start == at or not buf[seg_start:at].strip(strip):
            end = buf.find(term, at + 3)
            if end < 0:
                if not eof:
                    return -1
                end = len(buf)
            rest = buf[at + 3 : end]
            if not rest or rest[0] == elem or not rest.strip(strip):
                return min(end + 1, len(buf))
        at = buf.find("IEA", at + 3, limit)
    return -1


class _Walker:
    """Envelope state machine behind `walk` (kept in one object so the hot loop stays flat)."""

    def __init__(self) -> None:
        self.pos = 0
        self.isa: list[str] | None = None
        self.isa_pos = 0
        self.delims: X12Delimiters | None = None
        self.groups = 0
        self.group_controls: set[str] = set()
        self.group: Group | None = None
        self.tx: Transaction | None = None

    def err(self, code: str, message: str, pos: int | None, tag: str | None = None) -> Problem:
        tx = self.tx
        ctl = tx.control if tx is not None else self.control()
        return Problem(code, message, segment=pos, tag=tag, control=ctl)

    @property
    def interchange(self) -> str | None:
        # an ISA read as a segment may be cut short: no ISA13 then, not an IndexError
        return self.isa[12] if self.isa and len(self.isa) > 12 else None

    def control(self, transaction: str | None = None) -> dict[str, str | None]:
        return {
            "interchange": self.interchange,
            "group": self.group.control if self.group else None,
            "transaction": transaction,
        }

    def content(self, item: list[str], start: int, stop: int, pos: int,
                elem: str) -> Iterator[Problem]:
        """Segments `item[start:stop]` (numbered from `pos + start + 1`) are transaction content.

        Inside a transaction they join its body in one slice; outside, each is reported.
        """
        tx = self.tx
        if tx is not None:
            if tx.dropped:
                tx.dropped += stop - start
                return
            tx.body += item[start:stop]
            if len(tx.body) > values.MAX_SEGMENTS_PER_TRANSACTION:  # refuse it: count on, keep nothing
                tx.dropped, tx.body = len(tx.body), []
            return
        for k in range(start, stop):
            at = pos + k + 1
            tag = item[k].split(elem, 1)[0]
            yield self.err("unexpected_segment", f"{tag} at segment {at} is outside a "
                           "transaction (ST ... SE)", at, tag)

    # -- closing what is open ---------------------------------------------------------------
    def close_tx(self, why: str) -> Iterator[RejectedTransaction]:
        tx = self.tx
        if tx is None:
            return
        self.tx = None
        yield RejectedTransaction(
            tx.set_id, tx.control, tx.start, tx.group,
            [Problem("missing_trailer", f"ST*{tx.set_id}*{tx.control['transaction']} at "
                     f"segment {tx.start} has no SE ({why})", tx.start, "ST", control=tx.control)],
        )

    def close_group(self, why: str) -> Iterator[RejectedTransaction | GroupEnd]:
        yield from self.close_tx(why)
        if self.group is None:
            return
        g = self.group
        self.group = None
        ctl = {"interchange": g.interchange, "group": g.control, "transaction": None}
        yield GroupEnd(g, [Problem("missing_trailer", f"GS {g.control!r} at segment {g.start} "
                                   f"has no GE ({why})", g.start, "GS", control=ctl)], None)

    def close_interchange(self, why: str) -> Iterator[object]:
        yield from self.close_group(why)
        if self.isa is not None:
            yield self.err("missing_trailer", f"ISA {self.interchange!r} at segment "
                           f"{self.isa_pos} has no IEA ({why})", self.isa_pos, "ISA")
        self.isa = None

    # -- headers and trailers -------------------------------------------------------------
    def on_isa(self, elements: list[str], delims: X12Delimiters | None) -> Iterator[object]:
        yield from self.close_interchange(f"a new ISA starts at segment {self.pos}")
        self.isa, self.isa_pos, self.delims = elements, self.pos, delims
        self.groups = 0
        self.group_controls = set()
        ctl = elements[12].strip() if len(elements) > 12 else ""
        if not (ctl.isdigit() and len(ctl) == 9):
            yield self.err("bad_control_number", f"ISA13 {ctl!r} is not 9 digits", self.pos, "ISA")

    def on_gs(self, seg: list[str]) -> Iterator[object]:
        yield from self.close_group(f"a new GS starts at segment {self.pos}")
        pos = self.pos
        if self.isa is None:
            yield self.err("missing_header", f"GS at segment {pos} is outside an interchange", pos, "GS")
        g = Group(seg, pos, self.interchange, self.delims, isa=self.isa)
        self.group = g
        self.groups += 1
        if len(seg) != 9:
            yield self.err("bad_header", f"GS at segment {pos} has {len(seg) - 1} elements, "
                           "expected 8", pos, "GS")
        ctl = g.control.strip()
        if not (ctl.isdigit() and 1 <= len(ctl) <= 9):
            yield self.err("bad_control_number", f"GS06 {g.control!r} is not 1-9 digits", pos, "GS")
        key = ctl.lstrip("0") if ctl.isdigit() else ctl
        if key in self.group_controls:
            yield self.err("duplicate_control", f"GS06 {g.control!r} repeats in interchange "
                           f"{self.interchange!r}", pos, "GS")
        self.group_controls.add(key)

    def on_st(self, seg: list[str]) -> Iterator[object]:
        yield from self.close_tx(f"a new ST starts at segment {self.pos}")
        pos = self.pos
        set_id, ctl = _at(seg, 1), _at(seg, 2)
        problems = []
        if self.group is None:
            yield self.err("missing_header", f"ST at segment {pos} is outside a functional group",
                           pos, "ST")
        else:
            self.group.transactions += 1
            key = ctl.strip().lstrip("0") if ctl.strip().isdigit() else ctl.strip()
            if key in self.group.controls:
                problems.append(self.err("duplicate_control", f"ST02 {ctl!r} repeats in group "
                                         f"{self.group.control!r}", pos, "ST"))
            self.group.controls.add(key)
        if not (4 <= len(ctl.strip()) <= 9):
            problems.append(self.err("bad_control_number", f"ST02 {ctl!r} is {len(ctl)} "
                                     "characters; X12 allows 4-9", pos, "ST"))
        control = self.control(ctl)
        problems = [dataclasses.replace(p, control=control) for p in problems]
        self.tx = Transaction(set_id, control, pos, [], self.group, self.delims, problems)

    def on_se(self, seg: list[str]) -> Iterator[object]:
        pos, tx = self.pos, self.tx
        if tx is None:
            yield self.err("missing_header", f"SE at segment {pos} has no ST", pos, "SE")
            return
        problems = []
        count = len(tx.body) + tx.dropped + 2
        if tx.dropped:
            problems.append(self.err("transaction_too_large", too_large(f"ST*{tx.set_id}*{tx.control['transaction']}", tx.start, count),
                                     tx.start, "ST"))
        se01 = _at(seg, 1).strip()
        if not (se01.isdecimal() and int(se01) == count):
            problems.append(self.err("count_mismatch", f"SE01 is {se01!r} but transaction "
                                     f"{tx.control['transaction']!r} has {count} segments", pos, "SE"))
        se02 = _at(seg, 2)
        if not same_control(se02, tx.control["transaction"] or ""):
            problems.append(self.err("control_mismatch", f"SE02 {se02!r} does not match ST02 "
                                     f"{tx.control['transaction']!r}", pos, "SE"))
        self.tx = None
        if problems:
            yield RejectedTransaction(tx.set_id, tx.control, tx.start, tx.group,
                                      tx.problems + problems)
        else:
            yield tx

    def on_ge(self, seg: list[str]) -> Iterator[object]:
        yield from self.close_tx(f"GE at segment {self.pos}")
        pos, g = self.pos, self.group
        if g is None:
            yield self.err("missing_header", f"GE at segment {pos} has no GS", pos, "GE")
            return
        problems = []
        ge01, ge02 = _at(seg, 1).strip(), _at(seg, 2)
        if not (ge01.isdecimal() and int(ge01) == g.transactions):
            problems.append(self.err("count_mismatch", f"GE01 is {ge01!r} but group {g.control!r} "
                                     f"has {g.transactions} transactions", pos, "GE"))
        if not same_control(ge02, g.control):
            problems.append(self.err("control_mismatch", f"GE02 {ge02!r} does not match GS06 "
                                     f"{g.control!r}", pos, "GE"))
        self.group = None
        yield GroupEnd(g, problems, int(ge01) if ge01.isdecimal() else None)

    def on_iea(self, seg: list[str]) -> Iterator[object]:
        yield from self.close_group(f"IEA at segment {self.pos}")
        pos = self.pos
        if self.isa is None:
            yield self.err("missing_header", f"IEA at segment {pos} has no ISA", pos, "IEA")
            return
        iea01, iea02 = _at(seg, 1).strip(), _at(seg, 2)
        if not (iea01.isdecimal() and int(iea01) == self.groups):
            yield self.err("count_mismatch", f"IEA01 is {iea01!r} but interchange "
                           f"{self.interchange!r} has {self.groups} groups", pos, "IEA")
        if not same_control(iea02, self.interchange or ""):
            yield self.err("control_mismatch", f"IEA02 {iea02!r} does not match ISA13 "
                           f"{self.interchange!r}", pos, "IEA")
        self.isa = None


def walk(
    batches: Iterable[list[str] | IsaHeader | Problem],
) -> Iterator[Transaction | RejectedTransaction | GroupEnd | Problem]:
    """Follow the envelopes of `x12_batches` output; see the module docstring."""
    w = _Walker()
    handlers = {"GS": w.on_gs, "ST": w.on_st, "SE": w.on_se, "GE": w.on_ge, "IEA": w.on_iea}
    envelope = _ENVELOPE
    for item in batches:
        if isinstance(item, IsaHeader):
            w.pos += 1
            yield from w.on_isa(item.elements, item.delimiters)
            for p in item.problems:
                yield dataclasses.replace(p, segment=w.pos, tag="ISA", control=w.control())
            continue
        if isinstance(item, Problem):
            yield dataclasses.replace(item, segment=w.pos + 1, control=w.control())
            continue
        elem = w.delims.element if w.delims is not None else "*"
        pos = w.pos  # the number of the segment before item[0]
        done = 0  # item[:done] is handled
        # Envelope segments are rare (a few per thousand); find them with one comprehension
        # and hand the runs between them to the open transaction as whole slices. The filter
        # only looks at single characters (no slicing, so no new string per segment); it lets
        # through a superset (e.g. "SS", or a lone "S") that the exact tag check below drops.
        for i in [i for i, s in enumerate(item) if s[0] in "GIS" and s[1:2] in "SET"]:
            seg = item[i].split(elem)
            tag = seg[0]
            if tag not in envelope:
                continue  # e.g. SN1, GSX: content, it stays in the run
            if i > done:
                yield from w.content(item, done, i, pos, elem)
            done = i + 1
            w.pos = pos + i + 1
            if tag == "ISA":  # an ISA read as a segment: the previous interchange lost its IEA
                yield from w.on_isa(seg[1:], w.delims)
            else:
                yield from handlers[tag](seg)
        if done < len(item):
            yield from w.content(item, done, len(item), pos, elem)
        w.pos = pos + len(item)
    yield from w.close_interchange("end of data")
