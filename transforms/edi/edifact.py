"""Stream a UN/EDIFACT file into segments and check its envelopes (UNB/UNG/UNH ... UNT/UNE/UNZ).

* Delimiters come from UNA when present (component, element, decimal mark, release character,
  repetition, terminator), else the syntax defaults ``:+.? '``. Each interchange may bring its
  own UNA.
* The release character escapes the next character (``?'`` is a literal apostrophe). Splitting
  stays `str.split` on whole chunks; only segments that contain the release character take the
  slow, character-aware path.
* Segments are lists of elements, each a list of components, already unescaped:
  ``LIN+1++4000862141404:SRS`` -> ``[['LIN'], ['1'], [''], ['4000862141404', 'SRS']]``.
* Several interchanges per file are kept apart (pydifact merges them): every UNZ closes one,
  UNH references must be unique within it (a repeat is a `duplicate_control` error), and UNT /
  UNZ / UNE counts and references are checked (numerically when both are digits).

Example:
    >>> segs = [s for b in edifact_batches(["UNB+UNOA:3+A+B+240101:1200+1'UNZ+0+1'"])
    ...         if isinstance(b, list) for s in b]
    >>> [s[0][0] for s in segs]
    ['UNB', 'UNZ']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from invrecon.transforms.edi import values
from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.text_buffer import TextBuffer
from invrecon.transforms.edi.values import LAYOUT_WHITESPACE, same_control, too_large

__all__ = [
    "DEFAULT_DELIMITERS",
    "EdifactDelimiters",
    "Message",
    "component",
    "edifact_batches",
    "split_segment",
    "walk",
]

# Refill the buffer from the source when it holds less than this many characters.
_REFILL_BELOW = 1 << 16


@dataclasses.dataclass(frozen=True, slots=True)
class EdifactDelimiters:
    """The service characters of one interchange (UNA, or the syntax defaults)."""

    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str | None = "?"
    repetition: str = " "
    segment: str = "'"


# ISO 9735 defaults when there is no UNA (level A/B syntax; repetition is reserved before v4).
DEFAULT_DELIMITERS = EdifactDelimiters()


@dataclasses.dataclass(frozen=True, slots=True)
class UnaHeader:
    """A UNA service string advice and the delimiters it sets."""

    delimiters: EdifactDelimiters


@dataclasses.dataclass(slots=True)
class Message:
    """A message (UNH ... UNT) whose envelope checks passed; `body` excludes UNH and UNT."""

    type: str
    header: list[list[str]]
    control: dict[str, str | None]
    start: int
    body: list[list[list[str]]]
    delimiters: EdifactDelimiters
    problems: list[Problem] = dataclasses.field(default_factory=list)
    # Segments counted but not kept once the body passed MAX_SEGMENTS_PER_TRANSACTION.
    dropped: int = 0

    def add(self, seg: list[list[str]]) -> None:
        """Take a body segment; past the limit, count it (and drop what was kept)."""
        if self.dropped:
            self.dropped += 1
            return
        self.body.append(seg)
        if len(self.body) > values.MAX_SEGMENTS_PER_TRANSACTION:
            self.dropped, self.body = len(self.body), []


@dataclasses.dataclass(slots=True)
class RejectedMessage:
    """A message whose envelope is broken: no records, only `problems`."""

    type: str
    control: dict[str, str | None]
    start: int
    problems: list[Problem]


def _read_una(text: str) -> EdifactDelimiters | None:
    """Delimiters from ``UNA:+.? '`` (the 6 characters after UNA), None if unusable."""
    if len(text) < 9:
        return None
    comp, elem, dec, rel, rep, term = text[3:9]
    if len({comp, elem, term}) < 3 or any(c.isascii() and c.isalnum() for c in (comp, elem, term)):
        return None
    return EdifactDelimiters(comp, elem, dec, None if rel == " " else rel, rep, term)


def _split_released(text: str, term: str, rel: str | None) -> list[str]:
    """Split `text` on `term` except where the release character escapes it."""
    if not rel or rel not in text:
        return text.split(term)
    parts, start, i = [], 0, text.find(term)
    while i >= 0:
        n, j = 0, i - 1
        while j >= start and text[j] == rel:
            n, j = n + 1, j - 1
        if n % 2 == 0:
            parts.append(text[start:i])
            start = i + 1
        i = text.find(term, i + 1)
    parts.append(text[start:])
    return parts


def split_segment(raw: str, d: EdifactDelimiters) -> list[list[str]]:
    """Split one segment into elements and components, undoing release-character escapes.

    Example:
        >>> split_segment("FTX+ZZZ+++I?'ve a?:b", DEFAULT_DELIMITERS)
        [['FTX'], ['ZZZ'], [''], [''], ["I've a:b"]]
    """
    rel = d.release
    if not rel or rel not in raw:
        comp = d.component
        return [e.split(comp) for e in raw.split(d.element)]
    elements: list[list[str]] = []
    comps: list[str] = []
    cur: list[str] = []
    it = iter(raw)
    for ch in it:
        if ch == rel:
            cur.append(next(it, ""))
        elif ch == d.element:
            comps.append("".join(cur))
            elements.append(comps)
            comps, cur = [], []
        elif ch == d.component:
            comps.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    comps.append("".join(cur))
    elements.append(comps)
    return elements


def edifact_batches(
    chunks: Iterable[str],
) -> Iterator[list[list[list[str]]] | UnaHeader | Problem]:
    """Yield `UnaHeader`s and batches of split segments; a batch never spans a UNZ."""
    return _Tokenizer(chunks).batches()


class _Tokenizer(TextBuffer):
    """The state of `edifact_batches`: the unread text and the interchange's delimiters."""

    def __init__(self, chunks: Iterable[str]) -> None:
        super().__init__(chunks)
        self.delims: EdifactDelimiters | None = None  # None: between interchanges

    def start_interchange(self) -> Iterator[UnaHeader | Problem]:
        """Between interchanges: take the delimiters of a UNA (or the defaults before a UNB), or skip junk."""
        self.buf = self.buf.lstrip(LAYOUT_WHITESPACE)
        while not self.eof and len(self.buf) < 16:
            self.read()
            self.buf = self.buf.lstrip(LAYOUT_WHITESPACE)
        buf = self.buf
        if not buf:
            self.finished = True
        elif buf.startswith("UNA"):
            una = _read_una(buf)
            if una is None:
                yield Problem("bad_una", f"UNA {buf[:9]!r} does not give usable delimiters")
                self.delims = DEFAULT_DELIMITERS
            else:
                self.delims = una
                yield UnaHeader(una)
            self.buf = buf[9:]
        elif buf.startswith("UNB"):
            self.delims = DEFAULT_DELIMITERS
        else:
            yield Problem("junk", f"text that is not an interchange: {buf[:40]!r}")
            self._skip_to_interchange()

    def _skip_to_interchange(self) -> None:
        """Drop text up to the next UNA or UNB, reading on as needed (keep a tail that could start one)."""
        while True:
            buf = self.buf
            i = min((k for k in (buf.find("UNA"), buf.find("UNB")) if k >= 0), default=-1)
            if i >= 0:
                self.buf = buf[i:]
                return
            if self.eof:
                self.finished = True
                return
            self.buf = buf[-3:]
            self.read()

    def next_batch(self) -> list[list[list[str]]] | None:
        """The split segments of the buffer up to a UNZ (or its last complete segment); None: read on first."""
        d = self.delims
        if not self.eof and (len(self.buf) < _REFILL_BELOW or d.segment not in self.buf):
            self.read()  # only when low, so a UNZ mid-buffer does not make the buffer grow
            if not self.eof and d.segment not in self.buf:
                return None
        eof = self.eof
        parts = _split_released(self.buf, d.segment, d.release)
        tail = "" if eof else parts.pop()
        batch = []
        for k, part in enumerate(parts):
            s = part.strip(LAYOUT_WHITESPACE)
            if not s:
                continue
            seg = split_segment(s, d)
            batch.append(seg)
            if seg[0][0] == "UNZ":
                self.buf = d.segment.join(parts[k + 1 :] + ([] if eof else [tail]))
                self.delims = None
                return batch
        self.buf = tail
        if eof:
            self.finished = True
        return batch


def component(seg: list[list[str]], el: int, comp: int = 0) -> str:
    """Element `el`, component `comp` of a split segment, or "" when absent."""
    if el < len(seg) and comp < len(seg[el]):
        return seg[el][comp]
    return ""


class _Walker:
    """Envelope state for `walk`."""

    def __init__(self) -> None:
        self.pos = 0
        self.d = DEFAULT_DELIMITERS
        self.unb: list[list[str]] | None = None
        self.unb_pos = 0
        self.unb_units = 0
        self.refs: set[str] = set()
        self.ung: list[list[str]] | None = None
        self.ung_pos = 0
        self.ung_msgs = 0
        self.msg: Message | None = None
        self.handlers = {"UNB": self.on_unb, "UNG": self.on_ung, "UNH": self.on_unh, "UNT": self.on_unt,
                         "UNE": self.on_une, "UNZ": self.on_unz}

    def control(self, ref: str | None = None) -> dict[str, str | None]:
        return {
            "interchange": component(self.unb, 5) if self.unb else None,
            "group": component(self.ung, 5) if self.ung else None,
            "transaction": ref,
        }

    def err(self, code: str, message: str, pos: int | None, ctl: dict | None = None) -> Problem:
        ctl = ctl or (self.msg.control if self.msg else self.control())
        return Problem(code, message, segment=pos, control=ctl)

    def close_msg(self, why: str) -> Iterator[object]:
        m = self.msg
        if m is None:
            return
        self.msg = None
        yield RejectedMessage(m.type, m.control, m.start, [self.err(
            "missing_trailer", f"UNH {m.control['transaction']!r} at segment {m.start} has no UNT "
            f"({why})", m.start, m.control)])

    def close_group(self, why: str) -> Iterator[object]:
        yield from self.close_msg(why)
        if self.ung is not None:
            yield self.err("missing_trailer", f"UNG at segment {self.ung_pos} has no UNE ({why})",
                           self.ung_pos)
            self.ung = None

    def close_interchange(self, why: str) -> Iterator[object]:
        yield from self.close_group(why)
        if self.unb is not None:
            yield self.err("missing_trailer", f"UNB at segment {self.unb_pos} has no UNZ ({why})",
                           self.unb_pos)
            self.unb = None

    def on_segment(self, seg: list[list[str]]) -> Iterator[object]:
        """An envelope segment (UNB/UNG/UNH/UNT/UNE/UNZ), or content outside a message."""
        handler = self.handlers.get(seg[0][0])
        if handler is not None:
            yield from handler(seg)
        elif self.msg is not None:
            self.msg.add(seg)
        else:
            tag, pos = seg[0][0], self.pos
            yield self.err("unexpected_segment", f"{tag} at segment {pos} is outside a message "
                           "(UNH ... UNT)", pos)

    # -- headers and trailers -------------------------------------------------------------
    def on_unb(self, seg: list[list[str]]) -> Iterator[object]:
        pos = self.pos
        yield from self.close_interchange(f"a new UNB starts at segment {pos}")
        self.unb, self.unb_pos, self.unb_units, self.refs = seg, pos, 0, set()
        if not component(seg, 5):
            yield self.err("bad_header", f"UNB at segment {pos} has no control reference", pos)

    def on_ung(self, seg: list[list[str]]) -> Iterator[object]:
        pos = self.pos
        yield from self.close_group(f"a new UNG starts at segment {pos}")
        self.ung, self.ung_pos, self.ung_msgs = seg, pos, 0
        self.unb_units += 1

    def on_unh(self, seg: list[list[str]]) -> Iterator[object]:
        pos = self.pos
        yield from self.close_msg(f"a new UNH starts at segment {pos}")
        ref = component(seg, 1)
        problems = []
        if self.unb is None:
            yield self.err("missing_header", f"UNH at segment {pos} is outside an interchange",
                           pos)
        if self.ung is None:
            self.unb_units += 1
        else:
            self.ung_msgs += 1
        ctl = self.control(ref)
        if ref in self.refs:
            problems.append(self.err("duplicate_control", f"UNH reference {ref!r} at segment "
                                     f"{pos} repeats within interchange "
                                     f"{ctl['interchange']!r}", pos, ctl))
        self.refs.add(ref)
        self.msg = Message(component(seg, 2), seg, ctl, pos, [], self.d, problems)

    def on_unt(self, seg: list[list[str]]) -> Iterator[object]:
        pos, m = self.pos, self.msg
        if m is None:
            yield self.err("missing_header", f"UNT at segment {pos} has no UNH", pos)
            return
        problems = list(m.problems)
        count = len(m.body) + m.dropped + 2
        if m.dropped:
            problems.append(self.err("transaction_too_large", too_large(f"UNH {m.control['transaction']!r}", m.start, count),
                                     m.start, m.control))
        n, ref = component(seg, 1), component(seg, 2)
        if not (n.strip().isdecimal() and int(n) == count):
            problems.append(self.err("count_mismatch", f"UNT01 is {n!r} but message {ref!r} "
                                     f"has {count} segments", pos, m.control))
        if not same_control(ref, m.control["transaction"] or ""):
            problems.append(self.err("control_mismatch", f"UNT02 {ref!r} does not match UNH01 "
                                     f"{m.control['transaction']!r}", pos, m.control))
        self.msg = None
        if len(problems) > len(m.problems):
            yield RejectedMessage(m.type, m.control, m.start, problems)
        else:
            yield m

    def on_une(self, seg: list[list[str]]) -> Iterator[object]:
        yield from self.close_msg(f"UNE at segment {self.pos}")
        yield from self.check_trailer(seg, self.ung, "UNG", count=self.ung_msgs, counted="the group has {n} messages")
        self.ung = None

    def on_unz(self, seg: list[list[str]]) -> Iterator[object]:
        yield from self.close_group(f"UNZ at segment {self.pos}")
        yield from self.check_trailer(seg, self.unb, "UNB", count=self.unb_units,
                                      counted="interchange {ref!r} has {n} messages/groups")
        self.unb = None

    def check_trailer(self, seg: list[list[str]], header: list[list[str]] | None, header_tag: str, *, count: int,
                      counted: str) -> Iterator[Problem]:
        """A UNE / UNZ against its open UNG / UNB `header`: element 1 the count, element 2 the header's reference (05).

        `counted` says what was counted: a format string of `n` (the count) and `ref` (the header's reference).
        """
        tag, pos = seg[0][0], self.pos
        if header is None:
            yield self.err("missing_header", f"{tag} at segment {pos} has no {header_tag}", pos)
            return
        n, ref, want = component(seg, 1), component(seg, 2), component(header, 5)
        if not (n.strip().isdecimal() and int(n) == count):
            yield self.err("count_mismatch", f"{tag}01 is {n!r} but " + counted.format(n=count, ref=want), pos)
        if not same_control(ref, want):
            yield self.err("control_mismatch", f"{tag}02 {ref!r} does not match {header_tag}05 {want!r}", pos)


def walk(batches: Iterable[object]) -> Iterator[Message | RejectedMessage | Problem]:
    """Follow the envelopes of `edifact_batches` output, numbering segments from 1 (UNA counts)."""
    w = _Walker()
    for item in batches:
        if isinstance(item, UnaHeader):
            w.pos += 1
            w.d = item.delimiters
            continue
        if isinstance(item, Problem):
            if item.code == "bad_una":
                w.pos += 1
            yield dataclasses.replace(item, segment=w.pos or 1, control=w.control())
            continue
        for seg in item:
            w.pos += 1
            tag = seg[0][0]
            if tag[:2] == "UN" and tag in ("UNB", "UNG", "UNH", "UNT", "UNE", "UNZ"):
                yield from w.on_segment(seg)
            elif w.msg is not None:
                w.msg.add(seg)
            else:
                yield from w.on_segment(seg)
        if isinstance(item, list) and item and item[-1][0][0] == "UNZ":
            w.d = DEFAULT_DELIMITERS
    yield from w.close_interchange("end of data")
