"""Build 997 functional acknowledgements for the groups of a received X12 file.

One 997 interchange per received functional group (GS ... GE), as EDI teams expect to send back:

    AK1  functional id, group control number, version (GS01, GS06, GS08)
    AK2  per transaction: set id, control number
    AK3  per segment with data element errors: tag, position in the transaction, code 8
    AK4  per bad element: position, error code (1 missing, 6 invalid character, 7 invalid code,
         8 invalid date), a copy of the bad value
    AK5  A accepted / E accepted with errors noted / R rejected, with reason codes
    AK9  A / E / P (partially accepted) / R, transactions included (GE01), received, accepted

The verdicts follow the parser: an envelope-broken transaction (SE01, SE02, no SE) is rejected,
an unsupported set is rejected as not supported (AK5 code 1), a transaction with a bad line
is accepted with errors (the other lines loaded).

The verdicts come from the parse itself: pass an `AckCollector` to `parse_edi` and the one
pass over the file that yields its records fills the collector's 997s too (`parse.build_997` is
that, for a file nobody needs the records of).

Example:
    >>> from invrecon.transforms.edi.parse import build_997
    >>> build_997(b"not edi", file="x")
    []
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.x12 import X12Delimiters
from invrecon.transforms.edi.x12_envelope import Group, GroupEnd, RejectedTransaction, Transaction

__all__ = ["AckCollector"]

# AK5 transaction set syntax error codes (X12 element 718) for our envelope problem codes.
AK5_CODES = {"missing_trailer": "2", "control_mismatch": "3", "count_mismatch": "4",
             "duplicate_control": "23", "unsupported_set": "1", "bad_control_number": "6"}
# AK4 data element syntax error codes (X12 element 723) for our line problem codes.
AK4_CODES = {"bad_quantity": "6", "bad_uom": "7", "bad_date": "8"}
# Problems about one line of an accepted transaction (they become AK3/AK4, verdict E).
LINE_CODES = frozenset({"bad_quantity", "bad_uom", "bad_date", "missing_item_id"})
# AK9 functional group syntax error codes (X12 element 716).
AK9_CODES = {"missing_trailer": "3", "control_mismatch": "4", "count_mismatch": "5"}
# Defaults used when the received interchange gives nothing usable.
_DEFAULT_DELIMITERS = X12Delimiters("*", ">", "~", "^")


@dataclasses.dataclass(slots=True)
class _TxAck:
    set_id: str
    control: str
    start: int
    verdict: str
    codes: list[str]
    lines: list[Problem]


def _tx_ack(ev: Transaction | RejectedTransaction, problems: list[Problem]) -> _TxAck:
    """The acknowledgement of one transaction, from the problems its mapping reported."""
    ctl = ev.control["transaction"] or ""
    if isinstance(ev, RejectedTransaction):
        codes = sorted({AK5_CODES.get(p.code, "5") for p in ev.problems})
        return _TxAck(ev.set_id, ctl, ev.start, "R", codes, [])
    if any(p.code == "unsupported_set" for p in problems):
        return _TxAck(ev.set_id, ctl, ev.start, "R", ["1"], [])
    lines = [p for p in problems if p.code in LINE_CODES]
    noted = sorted({AK5_CODES[p.code] for p in ev.problems if p.code in AK5_CODES})
    if lines:
        noted = sorted(set(noted) | {"5"})
    return _TxAck(ev.set_id, ctl, ev.start, "E" if noted else "A", noted, lines)


def _ak_segments(group: Group, acks: list[_TxAck], end: GroupEnd) -> list[list[str]]:
    segs: list[list[str]] = [["AK1", group.functional_id, group.control, group.version]]
    for a in acks:
        segs.append(["AK2", a.set_id, a.control])
        for p in a.lines:
            position = str((p.segment or a.start) - a.start + 1)
            segs.append(["AK3", p.tag or "", position, "", "8"])
            if p.element is not None:
                code = "1" if p.code == "bad_quantity" and not (p.value or "").strip() else \
                    AK4_CODES.get(p.code, "6")
                segs.append(["AK4", str(p.element), "", code, (p.value or "")[:99]])
        segs.append(["AK5", a.verdict, *a.codes[:5]])
    accepted = sum(a.verdict in ("A", "E") for a in acks)
    group_codes = sorted({AK9_CODES.get(p.code, "4") for p in end.problems})
    received = len(acks)
    if accepted == 0 and received:
        verdict = "R"
    elif accepted < received:
        verdict = "P"
    elif group_codes or any(a.verdict == "E" for a in acks):
        verdict = "E"
    else:
        verdict = "A"
    included = str(end.included if end.included is not None else received)
    segs.append(["AK9", verdict, included, str(received), str(accepted), *group_codes[:5]])
    return segs


def _clean(value: str, d: X12Delimiters) -> str:
    """Drop delimiter characters from a value echoed back (AK4 copy, ids)."""
    for c in (d.element, d.component, d.segment, d.repetition):
        if c:
            value = value.replace(c, "")
    return value


def _render(group: Group, body: list[list[str]], now: dt.datetime) -> str:
    d = group.delimiters or _DEFAULT_DELIMITERS
    if d.component is None:
        d = dataclasses.replace(d, component=">" if ">" not in (d.element, d.segment) else ":")
    isa = group.isa or []

    def at(i: int, default: str) -> str:
        return isa[i] if i < len(isa) and isa[i].strip() else default

    numeric = "".join(ch for ch in group.control if ch.isdecimal()) or "1"
    control = f"{int(numeric) % 10**9:09d}"
    version = at(11, "00401")
    rep = d.repetition if d.repetition and version >= "00402" else at(10, "U")[:1] or "U"
    # The receiver of the original is the sender of the acknowledgement and vice versa.
    header = [
        "ISA", "00", " " * 10, "00", " " * 10,
        at(6, "ZZ")[:2].ljust(2), at(7, "RECEIVER").strip()[:15].ljust(15),
        at(4, "ZZ")[:2].ljust(2), at(5, "SENDER").strip()[:15].ljust(15),
        now.strftime("%y%m%d"), now.strftime("%H%M"), rep, version[:5].rjust(5, "0"), control,
        "0", at(14, "P")[:1], d.component or ">",
    ]
    gs = ["GS", "FA", group.header[3] if len(group.header) > 3 else "",
          group.header[2] if len(group.header) > 2 else "", now.strftime("%Y%m%d"),
          now.strftime("%H%M"), str(int(control)), "X", group.version or "004010"]
    st = ["ST", "997", "0001"]
    segs = [st, *body, ["SE", str(len(body) + 2), "0001"]]
    segs = [[_clean(v, d) for v in s] for s in [gs, *segs, ["GE", "1", str(int(control))],
                                                 ["IEA", "1", control]]]
    end = d.segment if d.segment in "\r\n" else d.segment + "\n"
    return d.element.join(header) + end + "".join(d.element.join(s) + end for s in segs)


class AckCollector:
    """The 997s of an X12 file, filled in by `parse_edi(..., acks=collector)` as it parses.

    `texts` holds one 997 interchange per functional group, in group order, once the parse is
    done; it stays empty for EDIFACT or anything that is not X12.
    """

    def __init__(self, *, now: dt.datetime | None = None):
        self.now = now or dt.datetime.now(dt.UTC)
        self.texts: list[str] = []
        self._open: dict[int, list[_TxAck]] = {}

    def transaction(self, ev: Transaction | RejectedTransaction, problems: list[Problem]) -> None:
        """A transaction was mapped (its records all yielded) with these problems."""
        if ev.group is not None:
            self._open.setdefault(id(ev.group), []).append(_tx_ack(ev, problems))

    def group_end(self, ev: GroupEnd) -> None:
        body = _ak_segments(ev.group, self._open.pop(id(ev.group), []), ev)
        self.texts.append(_render(ev.group, body, self.now))
