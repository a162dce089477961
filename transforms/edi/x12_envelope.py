"""Follow the envelopes of a tokenized X12 file (ISA/GS/ST ... SE/GE/IEA): `walk` checks them and numbers segments.

`walk` takes what `x12.x12_batches` yields, numbers every segment (1-based, the ISA is 1) and
yields `Transaction`s whose ST02/SE02 and SE01 agree, `RejectedTransaction`s (with the reasons)
for the others, envelope `Problem`s and a `GroupEnd` per GS (for the 997). A trailer that is
missing is reported when whatever comes next closes its envelope.

Control numbers are compared as numbers (IEA02 `3438` matches ISA13 `000003438`).

Example:
    >>> from invrecon.transforms.edi.x12 import x12_batches
    >>> text = ("ISA*00*          *00*          *ZZ*A              *ZZ*B              *"
    ...         "240101*1200*^*00501*000000001*0*P*>~GS*IB*A*B*20240101*1200*1*X*005010~"
    ...         "ST*846*0001~BIA*00*MM*R*20240101~SE*3*0001~GE*1*1~IEA*1*000000001~")
    >>> [type(e).__name__ for e in walk(x12_batches([text]))]
    ['Transaction', 'GroupEnd']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from invrecon.transforms.edi import values
from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.values import same_control, too_large
from invrecon.transforms.edi.x12 import IsaHeader, X12Delimiters
from invrecon.transforms.edi.x12 import element_at as _at

__all__ = ["Group", "GroupEnd", "RejectedTransaction", "Transaction", "walk"]

# Envelope tags the walker handles itself; everything else is transaction content.
_ENVELOPE = frozenset(("ISA", "IEA", "GS", "GE", "ST", "SE"))


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
