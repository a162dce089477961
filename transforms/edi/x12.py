"""Tokenize an ANSI X12 file: decoded text chunks in, an `IsaHeader` per interchange and batches of segments out.

`x12_batches` turns decoded text chunks into lists of segments (a segment is its text, tag first,
not yet split into elements), streaming so memory stays flat in the file size. Delimiters come
from each ISA by character position (ISA is fixed width: element separator at 3, component at
104, segment terminator at 105), so multi-byte terminators (`…`, `Ö`) work once the bytes are
decoded. CR/LF and indentation around segments are dropped. Splitting is `str.split` on whole
chunks, never per character. The envelopes are followed by `x12_envelope.walk`.

Example:
    >>> text = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *"
    ...         "240101*1200*^*00501*000000001*0*P*>~GS*IB*A*B*20240101*1200*1*X*005010~"
    ...         "ST*846*0001~BIA*00*MM*R*20240101~SE*3*0001~GE*1*1~IEA*1*000000001~")
    >>> [b if isinstance(b, list) else type(b).__name__ for b in x12_batches([text])]
    ['IsaHeader', ['GS*IB*A*B*20240101*1200*1*X*005010', 'ST*846*0001', 'BIA*00*MM*R*20240101', 'SE*3*0001', 'GE*1*1', 'IEA*1*000000001']]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from itertools import repeat

from invrecon.transforms.edi.errors import EdiError, Problem
from invrecon.transforms.edi.text_buffer import TextBuffer
from invrecon.transforms.edi.values import LAYOUT_WHITESPACE

__all__ = [
    "IsaHeader",
    "X12Delimiters",
    "element_at",
    "looks_like_isa",
    "read_isa",
    "split_element",
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


def _word_char(c: str) -> bool:
    """ASCII letters and digits cannot be delimiters (they occur in data); `Ö` or `…` can."""
    return c.isascii() and c.isalnum()


def element_at(seg: list[str], i: int) -> str:
    """Element `i` of a split segment, or "" when the segment is shorter."""
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
        elements, component, end, problem = _read_damaged_isa(text, sep)
        problems.append(problem)
    if end >= len(text):
        raise EdiError("ISA has no segment terminator")
    segment = text[end]
    _check_delimiters(sep, component, segment)
    return IsaHeader(
        elements=elements,
        delimiters=X12Delimiters(sep, component, segment, _repetition(elements, sep, component, segment)),
        consumed=end + 1,
        problems=tuple(problems),
    )


def _read_damaged_isa(text: str, sep: str) -> tuple[list[str], str | None, int, Problem]:
    """(elements, component separator or None, index of the terminator, the `bad_isa` problem) of an ISA
    that is not fixed width, read by counting its 16 element separators."""
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
    component: str | None = text[last + 1]
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
    return elements, component, end, Problem("bad_isa", f"ISA is {end + 1} characters, not {ISA_LENGTH}: " + "; ".join(wrong))


def _repetition(elements: list[str], sep: str, component: str | None, segment: str) -> str | None:
    """ISA11 as the repetition separator, when the version (ISA12) has one and it is usable."""
    rep_char, version = elements[10], elements[11]
    if (
        version >= _REPETITION_FROM_VERSION
        and not _word_char(rep_char)
        and rep_char not in LAYOUT_WHITESPACE
        and rep_char not in (sep, component, segment)
    ):
        return rep_char
    return None


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
    return _Tokenizer(chunks).batches()


class _Tokenizer(TextBuffer):
    """The state of `x12_batches`: the unread text, where it starts, and the interchange's delimiters."""

    def __init__(self, chunks: Iterable[str]) -> None:
        super().__init__(chunks)
        self.at = 0  # where the unread text starts in buf (`next_batch` moves it)
        self.delims: X12Delimiters | None = None  # None: between interchanges
        self.strip = LAYOUT_WHITESPACE
        self.line_break = ""  # the line break characters that are layout (not delimiters) here

    def start_interchange(self) -> Iterator[IsaHeader | Problem]:
        """Between interchanges: yield the next ISA (and take its delimiters), or what is wrong and skip on."""
        self.buf = self.buf.lstrip(LAYOUT_WHITESPACE)
        while not self.eof and len(self.buf) < _ISA_SEARCH:
            self.read()
            self.buf = self.buf.lstrip(LAYOUT_WHITESPACE)
        buf = self.buf
        if not buf:
            self.finished = True
            return
        if buf.startswith("ISA") and len(buf) > 3 and not _word_char(buf[3]):
            try:
                header = read_isa(buf)
            except EdiError as exc:
                yield Problem("bad_isa", str(exc))
                self.buf = buf[3:]
            else:
                self._take(header)
                yield header
                return
        elif looks_like_isa(buf):
            yield Problem("bad_isa", f"interchange header tag is {buf[:3]!r}, not 'ISA'")
            self.buf = buf[3:]
        else:
            yield Problem("junk", f"text that is not an interchange: {buf[:40]!r}")
        self._skip_to_isa()

    def _take(self, header: IsaHeader) -> None:
        """Read the interchange after `header` with its delimiters (the rest of the layout is stripped)."""
        delims = self.delims = header.delimiters
        self.strip = "".join(c for c in LAYOUT_WHITESPACE if c not in (delims.element, delims.component, delims.repetition))
        self.line_break = "".join(c for c in "\r\n" if c in self.strip)
        self.buf = self.buf[header.consumed :]

    def _skip_to_isa(self) -> None:
        """Drop text up to the next ISA, reading on as needed (keep a tail that could start one)."""
        while True:
            i = _find_isa(self.buf)
            if i >= 0:
                self.buf = self.buf[i:]
                return
            if self.eof:
                self.finished = True
                return
            self.buf = self.buf[-4:]
            self.read()

    def next_batch(self) -> list[str] | None:
        """The next batch of the interchange's segments (None: more text is needed first).

        Hands out about _BATCH characters at a time, cut after the interchange's IEA (the next
        one may change delimiters) or after a terminator (the tail is an incomplete segment; it
        waits for more text). Small batches are mapped while their segments are still in the CPU
        cache; `at` walks the buffer so it is not copied for every batch.
        """
        term, elem = self.delims.segment, self.delims.element
        # Read only when the buffer has run low: after an IEA the rest of the last chunk is
        # still here, and reading on regardless would grow the buffer by a chunk per interchange.
        if not self.eof and (len(self.buf) - self.at < _REFILL_BELOW or self.buf.find(term, self.at) < 0):
            self.buf, self.at = self.buf[self.at :], 0
            self.read()
            if not self.eof and term not in self.buf:
                return None
        buf, at, eof, line_break = self.buf, self.at, self.eof, self.line_break
        limit = at + _BATCH
        end = _iea_end(buf, term, elem, self.strip, eof, at, limit)
        interchange_done = end >= 0
        if not interchange_done:
            end = buf.rfind(term, at, limit) + 1 if len(buf) > limit else 0
            if end <= at:  # the rest fits in one batch, or a segment is longer than _BATCH
                end = len(buf) if eof else buf.rfind(term, at) + 1
        # The line break after the cut terminator goes with this batch (it is layout the next
        # segment would strip anyway), so one segment per line ends in a whole terminator+break.
        while end < len(buf) and buf[end] in line_break:
            end += 1
        self.at = end
        # One C-level split per batch; segments stay strings (the walker and the mappers split
        # only what they read) because a list per segment is what made this loop slow. map and
        # filter strip and drop empty segments without a bytecode loop.
        batch = list(filter(None, map(str.strip, _split_segments(buf[at:end], term, line_break), repeat(self.strip))))
        if interchange_done:
            self.buf, self.at = buf[end:], 0
            self.delims = None
        elif eof and end >= len(buf):
            self.finished = True
        return batch


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
