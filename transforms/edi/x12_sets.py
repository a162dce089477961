"""Map checked X12 transactions to parse-edi records (846, 852, 856, 940, 944, 945, 947, 180).

Each mapper takes a `Transaction` (envelope already checked), a `MapContext` and a list for
its problems, and yields records as soon as each is final (`stream_transaction`; the list form
is `map_transaction`). A problem in one line (a quantity that is not a number, a unit that is
not a unit) drops that line's record and is reported; the rest of the transaction still loads.

Speed (bench/bench_edi.py): segments arrive as text and each mapper splits them itself; the
846 / 856 lines that make up nearly all of a feed take a short path (one split, the usual
element count unpacked, one template copy per record), and everything else the general one.

Worked example (846, the synthetic world's warehouse feed):

    BIA*00*MM*R1*20261130*2000      as_of 2026-11-30T20:00:00 for every line
    N1*WH*Main DC*92*DC01           location DC01
    LIN**UP*012345678905            item_id 012345678905 (UP), the only id
    QTY*17*40*EA                    -> position on_hand 40 EA
    QTY*33*35*EA                    -> position available 35 EA

Movements (940 reservation, 944 receipt, 945 shipment, 947 adjustment) carry magnitudes except
adjustments, which are signed: a 947 W19 quantity keeps the sign written, and a reason code that
can only lower stock (damaged, destroyed, recalled...) makes an unsigned quantity negative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from invrecon.transforms.edi.errors import EdiError, Problem
from invrecon.transforms.edi.records import (
    MapContext,
    base_record,
    no_records_problem,
    unsupported_problem,
)
from invrecon.transforms.edi.values import (
    choose_item_id,
    parse_number,
    x12_timestamp,
)
from invrecon.transforms.edi.x12 import Transaction

__all__ = ["MAPPERS", "MapContext", "map_transaction", "stream_transaction"]

# 846 / 852 QTY01 qualifiers that are positions; others (34, QH, 63 ...) are not stock figures.
POSITION_QTY = {"17": "on_hand", "33": "available"}
# 852 ZA01 activity codes that are positions (QA = current inventory available for sale).
POSITION_ZA = {"QA": "available"}
# N1 entity codes naming the location a report or a warehouse document is about, best first.
LOCATION_ENTITIES = ("WH", "RL", "SN", "ST")
# 856 / 180 ship-from and ship-to entity codes, best first.
FROM_ENTITIES = ("SF", "SH", "SU", "SE")
TO_ENTITIES = ("ST", "WH")
# 846 DTM qualifiers that date the inventory itself (effective / as-of), preferred over BIA.
AS_OF_DTM = ("007", "405", "366")
# 856 DTM qualifiers: shipped, and estimated / scheduled delivery.
SHIPPED_DTM = "011"
EXPECTED_DTM = ("017", "067", "002")
# HL03 level codes in hierarchy order; an HL without HL02 hangs under the last higher level.
HL_RANK = {"S": 0, "O": 1, "T": 2, "P": 3, "Q": 3, "I": 4}
# 947 W19 reason codes that can only lower stock; an unsigned quantity with one is negated.
DECREASE_REASONS = frozenset(
    {"04", "05", "07", "53", "AI", "AU", "AV", "AW", "AX", "BS", "CD", "AR"}
)
# 944 W1701 reporting code C = customer return (everything else is a receipt).
RETURN_REPORTING = "C"
# Quantities as written -> int for the common small ones: a dict hit is about half the cost
# of int() on a fresh string. Only canonical spellings are keys ("007" and "1000" miss and go
# through int(); so does "0", whose value is falsy in `small_int(v) or int(v)`).
_SMALL_INTS = {str(n): n for n in range(1000)}


def _at(seg: list[str], i: int) -> str:
    return seg[i] if i < len(seg) else ""


def _pairs(seg: list[str], start: int, stop: int | None = None) -> list[dict[str, str]]:
    """(qualifier, id) pairs from element `start` on, both non-empty, ids as written."""
    end = len(seg) if stop is None else min(stop, len(seg))
    return [
        {"qualifier": seg[k], "id": seg[k + 1]}
        for k in range(start, end - 1, 2)
        if seg[k] and seg[k + 1]
    ]


def _case_code(seg: list[str], i: int) -> list[dict[str, str]]:
    """The bare U.P.C. case code element of W01/W07/W12/W19, under the implied qualifier UC."""
    v = _at(seg, i)
    return [{"qualifier": "UC", "id": v}] if v else []


def _first_party(parties: dict[str, str | None], entities: tuple[str, ...]) -> str | None:
    """The location of the first of `entities` that `parties` names (a loop: no generator)."""
    for entity in entities:
        location = parties.get(entity)
        if location:
            return location
    return None


def _party(seg: list[str]) -> str | None:
    """N1 location: the coded id (N104) when given, else the name (N102)."""
    return _at(seg, 4) or _at(seg, 2) or None


class _Lines:
    """Collects problems (and, for mappers that resolve lines at the end, records) for one
    transaction; small helpers shared by mappers."""

    def __init__(self, tx: Transaction, ctx: MapContext, kind: str,
                 problems: list[Problem]) -> None:
        self.tx = tx
        self.ctx = ctx
        self.base = base_record(kind, file=ctx.file, standard="x12", set_id=tx.set_id,
                                control=tx.control)
        self.records: list[dict] = []
        self.problems = problems
        self.comp = tx.delimiters.component if tx.delimiters else None

    def pos(self, i: int) -> int:
        return self.tx.start + 1 + i

    def problem(self, code: str, message: str, i: int, tag: str, element: int | None = None,
                value: str | None = None) -> None:
        self.problems.append(Problem(code, message, self.pos(i), tag, element, value))

    def qty(self, seg: list[str], el: int, i: int, *, required: bool = True) -> int | float | None:
        v = _at(seg, el)
        if v.isdecimal():
            return int(v)
        if not v and not required:
            return None
        try:
            return parse_number(v)
        except EdiError:
            what = "missing" if not v.strip() else f"{v!r} is not a number"
            self.problem("bad_quantity", f"{seg[0]}{el:02d} quantity {what} at segment "
                         f"{self.pos(i)}", i, seg[0], el, v)
            return None

    def uom(self, seg: list[str], el: int, i: int) -> tuple[bool, str | None]:
        """(ok, unit): a missing unit is ok (None); a malformed one is a `bad_uom` problem."""
        v = _at(seg, el)
        if not v:
            return True, None
        if self.comp and self.comp in v:
            v = v.split(self.comp, 1)[0]
        u = v.strip()
        if len(u) == 2 and u.isalnum():
            return True, u
        self.problem("bad_uom", f"{seg[0]}{el:02d} unit {v!r} at segment {self.pos(i)} is not a "
                     "2-character unit code", i, seg[0], el, v)
        return False, None

    def line(self, template: dict, seg: list[str], i: int, qty_el: int, uom_el: int) -> dict | None:
        """A copy of `template` with this segment's position, quantity and unit; None if bad."""
        q = self.qty(seg, qty_el, i)
        ok, uom = self.uom(seg, uom_el, i)
        if q is None or not ok:
            return None
        rec = template.copy()
        rec["segment"] = self.tx.start + 1 + i
        rec["qty"] = q
        rec["uom"] = uom
        return rec

    def timestamp(self, date: str, time: str, zone: str, i: int, tag: str) -> str | None:
        if not date:
            return None
        try:
            return x12_timestamp(date, time, zone)
        except EdiError as exc:
            self.problem("bad_date", f"{tag} at segment {self.pos(i)}: {exc}", i, tag, 2, date)
            return None

    def dtm(self, seg: list[str], i: int) -> str | None:
        return self.timestamp(_at(seg, 2), _at(seg, 3), _at(seg, 4), i, "DTM")

    def item(self, rec: dict, ids: list[dict[str, str]]) -> None:
        rec["item_ids"] = ids
        rec["item_id"], rec["item_id_qualifier"] = choose_item_id(ids, self.ctx.qualifiers)

    def emit(self, rec: dict, i: int, ids: list[dict[str, str]] | None) -> None:
        if not ids:
            tag = self.tx.body[i].split(self.tx.element, 1)[0]
            self.problem("missing_item_id", f"{tag} at segment {self.pos(i)} "
                         "has a quantity but its line has no item id", i, tag)
            return
        self.item(rec, ids)
        self.records.append(rec)

    def group_time(self) -> str | None:
        """GS04/GS05: when the document was sent, for sets that carry no date of their own."""
        g = self.tx.group
        if g is None:
            return None
        try:
            return x12_timestamp(_at(g.header, 4), _at(g.header, 5))
        except EdiError:
            return None

    def finish(self, emitted: bool) -> None:
        """Note a transaction that gave neither records nor problems (so none goes unseen)."""
        if not emitted and not self.problems:
            tx = self.tx
            self.problems.append(no_records_problem(f"transaction set {tx.set_id!r}", tx.start,
                                                    "ST"))

    def done(self) -> Iterator[dict]:
        """Hand out the records collected with `emit` (mappers that resolve lines at the end)."""
        yield from self.records
        self.finish(bool(self.records))


# ---------------------------------------------------------------------------------------------
# Positions: 846 inventory inquiry/advice, 852 product activity data
# ---------------------------------------------------------------------------------------------
def map_positions(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """846 / 852 -> one position per (item, location, qty qualifier).

    Location: an SCH / SDQ breakdown after a QTY (one record per location, replacing the total),
    else N1 in the item loop, else the header N1 (WH, RL, SN, ST). Unit: QTY03, else the UIT
    right after the QTY, else the item's UIT. As-of: DTM 007/405/366, else BIA04/05 (846) or
    XQ03/XQ02 (852), else DTM 097.

    Records are yielded as soon as they are final (the last QTY's waits for the next segment:
    a UIT may still give its unit, an SCH / SDQ replace it); problems go to `problems`.
    """
    out = _Lines(tx, ctx, "position", problems)
    base = out.base
    elem = tx.element
    header_loc: dict[str, str | None] = {}
    as_of_dtm: str | None = None
    as_of_doc: str | None = None
    as_of_created: str | None = None
    in_detail = False
    ids: list[dict[str, str]] | None = None
    item_base = base
    item_uom: str | None = None
    pending: dict | None = None  # the last QTY record: a UIT may give its unit, SCH split it
    split_from: dict | None = None  # the QTY total that SCH / SDQ lines are breaking down
    emitted = False
    first = tx.start + 1
    qualifiers = ctx.qualifiers
    position_qty = POSITION_QTY.get
    small_int = _SMALL_INTS.get

    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        # Any segment but UIT / SCH / SDQ makes the held QTY record final; QTY and LIN (nearly
        # every segment of an 846) check that first, the rest below.
        if tag == "QTY":
            if pending is not None:
                yield pending
                emitted = True
                pending = None
            split_from = None
            if ids is None:
                continue  # a header QTY (before any LIN) is not a position
            n = len(seg)
            if n == 4:  # QTY01 qualifier, QTY02 quantity, QTY03 unit: the usual shape
                _, q, v, u = seg
            elif n < 3:
                continue
            else:
                q, v = seg[1], seg[2]
                u = seg[3] if n > 3 else ""
            qty_type = position_qty(q)
            if qty_type is None:
                continue
            if not ids:
                out.problem("missing_item_id", f"QTY at segment {first + i} has no LIN item id",
                            i, "QTY")
                continue
            if v.isdecimal() and len(u) == 2 and u.isalnum():  # the common case, kept cheap
                rec = item_base.copy()
                rec["segment"] = first + i
                rec["qty"] = small_int(v) or int(v)
                rec["uom"] = u
            else:
                rec = out.line(item_base, seg, i, 2, 3)
                if rec is None:
                    continue
                if rec["uom"] is None:
                    rec["uom"] = item_uom
            rec["qty_type"] = qty_type
            pending = rec
        elif tag == "LIN":
            if pending is not None:
                yield pending
                emitted = True
                pending = None
            split_from = None
            if not in_detail:
                in_detail = True
                base["as_of"] = as_of_dtm or as_of_doc or as_of_created
                base["location"] = next(
                    (header_loc[e] for e in LOCATION_ENTITIES if header_loc.get(e)), None)
                item_base = base.copy()
            else:
                # Records are copies of item_base, so the next item can reuse it: only these
                # four fields ever differ from base (base is fixed once the detail starts).
                item_base["location"] = base["location"]
            if len(seg) == 4 and seg[2] and seg[3]:  # one id: no choice to make
                ids = [{"qualifier": seg[2], "id": seg[3]}]
                item_base["item_id"], item_base["item_id_qualifier"] = seg[3], seg[2]
            else:
                ids = _pairs(seg, 2)
                item_base["item_id"], item_base["item_id_qualifier"] = choose_item_id(
                    ids, qualifiers)
            item_base["item_ids"] = ids
            item_uom = None
        else:
            if pending is not None and tag != "UIT" and tag != "SCH" and tag != "SDQ":
                yield pending
                emitted = True
                pending = None
            if tag == "UIT":
                ok, uom = out.uom(seg, 1, i)
                if pending is not None and pending["uom"] is None:
                    pending["uom"] = uom
                else:
                    item_uom = uom
            elif tag == "SCH" or tag == "SDQ":
                if pending is not None:  # the total is replaced by its per-location breakdown
                    split_from, pending = pending, None
                for rec in _breakdown(out, seg, i, split_from, item_base):
                    yield rec
                    emitted = True
            elif tag == "ZA":
                split_from = None
                qty_type = POSITION_ZA.get(_at(seg, 1))
                if qty_type is None or not in_detail or not ids:
                    continue
                rec = out.line(item_base, seg, i, 2, 3)
                if rec is None:
                    continue
                rec["uom"] = rec["uom"] or item_uom
                rec["qty_type"] = qty_type
                yield rec
                emitted = True
            elif tag == "N1":
                split_from = None
                if in_detail:
                    if _at(seg, 1) in LOCATION_ENTITIES and item_base is not base:
                        item_base["location"] = _party(seg)
                else:
                    header_loc.setdefault(_at(seg, 1), _party(seg))
            elif tag == "DTM":
                split_from = None
                if not in_detail:
                    q = _at(seg, 1)
                    if q in AS_OF_DTM and as_of_dtm is None:
                        as_of_dtm = out.dtm(seg, i)
                    elif as_of_created is None:
                        as_of_created = out.dtm(seg, i)
            elif tag == "BIA" and not in_detail:
                as_of_doc = out.timestamp(_at(seg, 4), _at(seg, 5), "", i, "BIA")
            elif tag == "XQ" and not in_detail:
                as_of_doc = out.timestamp(_at(seg, 3) or _at(seg, 2), "", "", i, "XQ")
            else:
                split_from = None
    if pending is not None:
        yield pending
        emitted = True
    out.finish(emitted)


def _breakdown(out: _Lines, seg: list[str], i: int, total: dict | None,
               item_base: dict) -> list[dict]:
    """SCH (one location) or SDQ (up to 10 location/qty pairs) splitting the last QTY."""
    template = total if total is not None else dict(item_base, qty_type="on_hand")
    tag = seg[0]
    if tag == "SCH":  # SCH01 qty, SCH02 unit, SCH03 entity code, SCH04 name
        rec = out.line(template, seg, i, 1, 2)
        if rec is None:
            return []
        rec["uom"] = rec["uom"] or template["uom"]
        rec["location"] = _at(seg, 4) or None
        return [rec]
    ok, uom = out.uom(seg, 1, i)  # SDQ01 unit, SDQ02 id qualifier, then (location, qty) pairs
    if not ok:
        return []
    records = []
    for el in range(3, min(len(seg), 23) - 1, 2):
        loc = seg[el]
        if not loc:
            continue
        q = out.qty(seg, el + 1, i)
        if q is None:
            continue
        rec = template.copy()
        rec.update(segment=out.pos(i), qty=q, uom=uom or template["uom"], location=loc)
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------
# In transit: 856 ship notice, 180 return merchandise authorization
# ---------------------------------------------------------------------------------------------
def map_856(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """856 -> one in_transit record per item (LIN + SN1) in the HL tree.

    The shipment id is BSN02; shipped_at is DTM 011, else BSN03/BSN04; ship-from / ship-to come
    from the nearest N1 SF/SH and ST up the item's HL chain. An HL without a parent id (HL02
    empty) hangs under the most recent HL of a higher level (S > O > T > P > I).
    """
    out = _Lines(tx, ctx, "in_transit", problems)
    base = out.base
    base["qty_type"] = "shipped"
    elem = tx.element
    parties: dict[str, dict[str, str | None]] = {"": {}}  # HL id -> {entity: location}
    parent: dict[str, str] = {}
    # The open HLs, outermost first, as two parallel lists (rank, id): ranks strictly rise, so
    # an HL of rank r closes every open HL of rank >= r and hangs under the one left on top.
    stack_ranks: list[int] = []
    stack_ids: list[str] = []
    hl = level = hl_up = ""
    bsn_time: str | None = None
    shipped: str | None = None
    expected: str | None = None
    ids: list[dict[str, str]] | None = None
    waiting: tuple[dict, int] | None = None  # an SN1 seen before its LIN
    resolved: dict[str, tuple[str | None, str | None]] = {}
    emitted = False

    def ends(h: str, depth: int = 0) -> tuple[str | None, str | None]:
        """(from, to) for HL `h`: its own N1s, else its parent's (cached per HL)."""
        got = resolved.get(h)
        if got is not None:
            return got
        up = parent.get(h, "" if h else None)
        frm = to = None
        if up is not None and depth < 64:  # HL02 loops in bad files end here
            frm, to = resolved.get(up) or ends(up, depth + 1)
        own = parties.get(h)
        if own:
            frm = _first_party(own, FROM_ENTITIES) or frm
            to = _first_party(own, TO_ENTITIES) or to
        resolved[h] = (frm, to)
        return frm, to

    def finish(rec: dict, item_ids: list[dict[str, str]]) -> dict:
        rec["item_ids"] = item_ids
        rec["item_id"], rec["item_id_qualifier"] = choose_item_id(item_ids, ctx.qualifiers)
        rec["from_location"], rec["to_location"] = ends(hl)
        rec["shipped_at"] = shipped or bsn_time
        rec["expected_at"] = expected
        return rec

    first = tx.start + 1
    small_int = _SMALL_INTS.get
    hl_rank = HL_RANK.get
    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        if tag == "SN1":
            if len(seg) > 3 and ids and len(ids) == 1:  # the common case, kept cheap
                v, u = seg[2], seg[3]
                if v.isdecimal() and len(u) == 2 and u.isalnum():
                    rec = base.copy()
                    rec["segment"] = first + i
                    rec["qty"] = small_int(v) or int(v)
                    rec["uom"] = u
                    rec["item_ids"] = ids
                    only = ids[0]
                    rec["item_id"] = only["id"]
                    rec["item_id_qualifier"] = only["qualifier"]
                    got = resolved.get(hl)
                    if got is None:
                        # ends(hl) for an item HL without N1s of its own is its parent's
                        # (inlined: the call is most of the cost of a ship notice line)
                        got = resolved.get(hl_up) if hl not in parties else None
                        if got is None:
                            got = ends(hl)
                        else:
                            resolved[hl] = got
                    rec["from_location"], rec["to_location"] = got
                    rec["shipped_at"] = shipped or bsn_time
                    rec["expected_at"] = expected
                    yield rec
                    emitted = True
                    continue
            rec = out.line(base, seg, i, 2, 3)
            if rec is None:
                continue
            if ids:
                yield finish(rec, ids)
                emitted = True
            else:
                waiting = (rec, i)
        elif tag == "LIN":
            if len(seg) == 4 and seg[2] and seg[3]:
                ids = [{"qualifier": seg[2], "id": seg[3]}]
            else:
                ids = _pairs(seg, 2)
            if waiting is not None and ids:
                yield finish(waiting[0], ids)
                emitted = True
                waiting = None
        elif tag == "HL":
            if waiting is not None:
                out.emit(waiting[0], waiting[1], None)
                waiting = None
            n = len(seg)
            if n == 4:  # HL01 id, HL02 parent, HL03 level: the usual shape
                _, hl, up, level = seg
            else:
                hl = seg[1] if n > 1 else ""
                up = seg[2] if n > 2 else ""
                level = seg[3] if n > 3 else ""
            rank = hl_rank(level, 3)
            if stack_ranks and stack_ranks[-1] == rank:
                # a sibling of the last HL (the next item): it takes that HL's place
                stack_ids[-1] = hl
                if not up:
                    up = stack_ids[-2] if len(stack_ids) > 1 else ""
            else:
                while stack_ranks and stack_ranks[-1] >= rank:
                    stack_ranks.pop()
                    stack_ids.pop()
                if not up:
                    up = stack_ids[-1] if stack_ids else ""
                stack_ranks.append(rank)
                stack_ids.append(hl)
            parent[hl] = hl_up = up
            resolved.pop(hl, None)
            ids = None
        elif tag == "N1":
            who = _at(seg, 1)
            parties.setdefault(hl, {}).setdefault(who, _party(seg))
            resolved.clear()
        elif tag == "DTM":
            if level not in ("", "S"):  # order / item dates do not date the shipment
                continue
            q = _at(seg, 1)
            if q == SHIPPED_DTM and shipped is None:
                shipped = out.dtm(seg, i)
            elif q in EXPECTED_DTM and expected is None:
                expected = out.dtm(seg, i)
        elif tag == "BSN":
            base["shipment_id"] = base["reference"] = _at(seg, 2) or None
            bsn_time = out.timestamp(_at(seg, 3), _at(seg, 4), "", i, "BSN")
    if waiting is not None:
        out.emit(waiting[0], waiting[1], None)
    out.finish(emitted)


def map_180(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """180 -> in_transit returns inbound: one per BLI (id pair, qty, unit; more ids from BLI08).

    The RMA number (BGN02) is the shipment id; shipped_at is BGN03/04; the return goes to N1 WH /
    N9 WH / N1 ST and comes from N1 SF / SH / BY.
    """
    out = _Lines(tx, ctx, "in_transit", problems)
    base = out.base
    base["event_type"] = "return"
    base["qty_type"] = "returned"
    parties: dict[str, str | None] = {}
    pending: list[tuple[dict, int, list[dict[str, str]]]] = []
    elem = tx.element
    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        if tag == "BGN":
            base["shipment_id"] = base["reference"] = _at(seg, 2) or None
            base["shipped_at"] = out.timestamp(_at(seg, 3), _at(seg, 4), "", i, "BGN")
        elif tag == "N1":
            parties.setdefault(_at(seg, 1), _party(seg))
        elif tag == "N9" and _at(seg, 1) == "WH":
            parties.setdefault("WH", _at(seg, 2) or None)
        elif tag == "BLI":
            ids = _pairs(seg, 1, 3) + _pairs(seg, 8)
            rec = out.line(base, seg, i, 3, 4)
            if rec is not None:
                pending.append((rec, i, ids))
    frm = next((parties[e] for e in ("SF", "SH", "BY") if parties.get(e)), None)
    to = next((parties[e] for e in ("WH", "ST") if parties.get(e)), None)
    for rec, i, ids in pending:
        rec["from_location"], rec["to_location"] = frm, to
        out.emit(rec, i, ids)
    yield from out.done()


# ---------------------------------------------------------------------------------------------
# Movements: 940 / 944 / 945 / 947 warehouse documents
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class _Line:
    """Where a warehouse line segment keeps its fields (element positions)."""

    tag: str
    qty: int
    uom: int
    case_code: int
    pairs: tuple[int, ...]


_W01 = _Line("W01", 1, 2, 3, (4, 6))
_W07 = _Line("W07", 1, 2, 3, (4, 6))
_W12 = _Line("W12", 3, 5, 6, (7, 16))
_W19 = _Line("W19", 2, 3, 4, (5, 7, 17))


def _warehouse(
    tx: Transaction,
    ctx: MapContext,
    problems: list[Problem],
    *,
    line: _Line,
    event_type: str,
    qty_type: str,
    header: Callable[[_Lines, list[str], int], None],
    header_tag: str,
    counterparty: tuple[str, ...],
    signed: Callable[[list[str], int | float], int | float] | None = None,
) -> Iterator[dict]:
    """The shared shape of 940/944/945/947: a header, N1 parties, then line segments."""
    out = _Lines(tx, ctx, "movement", problems)
    base = out.base
    base["event_type"] = event_type
    base["qty_type"] = qty_type
    parties: dict[str, str | None] = {}
    pending: list[tuple[dict, int, list[dict[str, str]]]] = []
    elem = tx.element
    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        if tag == line.tag:
            rec = out.line(base, seg, i, line.qty, line.uom)
            if rec is None:
                continue
            if signed is not None:
                rec["qty"] = signed(seg, rec["qty"])
            ids = _case_code(seg, line.case_code)
            for el in line.pairs:
                ids += _pairs(seg, el, el + 2)
            pending.append((rec, i, ids))
        elif tag == "N1":
            parties.setdefault(_at(seg, 1), _party(seg))
        elif tag == header_tag:
            header(out, seg, i)
        elif tag == "G62" and event_type == "shipment" and _at(seg, 1) in ("11", "10"):
            # 945 G62 11 = shipped on this date (G6203/04 the time)
            base["occurred_at"] = out.timestamp(_at(seg, 2), _at(seg, 4), _at(seg, 5), i, "G62")
    location = next((parties[e] for e in ("WH", "SF") if parties.get(e)), None)
    other = next((parties[e] for e in counterparty if parties.get(e)), None)
    if base["occurred_at"] is None:
        base["occurred_at"] = out.group_time()
    for rec, i, ids in pending:
        rec["location"] = location
        rec["to_location" if event_type in ("shipment", "reservation") else "from_location"] = other
        rec["occurred_at"] = base["occurred_at"]
        out.emit(rec, i, ids)
    yield from out.done()


def _w05(out: _Lines, seg: list[str], i: int) -> None:
    out.base["reference"] = _at(seg, 2) or _at(seg, 3) or None


def _w06(out: _Lines, seg: list[str], i: int) -> None:
    shipment = _at(seg, 4) or None
    out.base["shipment_id"] = shipment
    out.base["reference"] = shipment or _at(seg, 2) or None
    if out.base["occurred_at"] is None:
        out.base["occurred_at"] = out.timestamp(_at(seg, 3), "", "", i, "W06")


def _w17(out: _Lines, seg: list[str], i: int) -> None:
    shipment = _at(seg, 5) or None
    out.base["shipment_id"] = shipment
    out.base["reference"] = shipment or _at(seg, 3) or None
    out.base["occurred_at"] = out.timestamp(_at(seg, 2), _at(seg, 7), "", i, "W17")
    if _at(seg, 1) == RETURN_REPORTING:
        out.base["event_type"] = "return"


def _w15(out: _Lines, seg: list[str], i: int) -> None:
    out.base["reference"] = _at(seg, 2) or None
    out.base["occurred_at"] = out.timestamp(_at(seg, 1), "", "", i, "W15")


def _adjustment_sign(seg: list[str], q: int | float) -> int | float:
    raw = _at(seg, 2).strip()
    if raw.startswith("-") or _at(seg, 1) not in DECREASE_REASONS:
        return q
    return -q


def map_940(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """940 warehouse shipping order -> reservations (W01 qty/unit, location N1 WH)."""
    return _warehouse(tx, ctx, problems, line=_W01, event_type="reservation", qty_type="ordered", header=_w05,
                      header_tag="W05", counterparty=("ST", "CN"))


def map_944(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """944 warehouse stock transfer receipt -> receipts (returns when W1701 is C)."""
    return _warehouse(tx, ctx, problems, line=_W07, event_type="receipt", qty_type="received", header=_w17,
                      header_tag="W17", counterparty=("SF", "SH", "DE"))


def map_945(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """945 warehouse shipping advice -> shipments (W12 units shipped)."""
    return _warehouse(tx, ctx, problems, line=_W12, event_type="shipment", qty_type="shipped", header=_w06,
                      header_tag="W06", counterparty=("ST", "CN"))


def map_947(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """947 warehouse inventory adjustment -> signed adjustments (W19, sign by reason code)."""
    return _warehouse(tx, ctx, problems, line=_W19, event_type="adjustment", qty_type="adjusted", header=_w15,
                      header_tag="W15", counterparty=(), signed=_adjustment_sign)


# A mapper yields records as they are final and appends its problems to the list it is given
# (yielding, not collecting, keeps each record's memory hot: the caller is done with one
# before the next is built).
Mapper = Callable[[Transaction, MapContext, list[Problem]], Iterator[dict]]

MAPPERS: dict[str, Mapper] = {
    "846": map_positions,
    "852": map_positions,
    "856": map_856,
    "180": map_180,
    "940": map_940,
    "944": map_944,
    "945": map_945,
    "947": map_947,
}


def stream_transaction(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """Yield one checked transaction's records; its problems are appended to `problems`.

    `problems` is complete once the iterator is exhausted. Unsupported sets yield nothing and
    one `unsupported_set` problem; a set that gave nothing at all, one `no_records` problem.
    """
    mapper = MAPPERS.get(tx.set_id)
    if mapper is None:
        problems.append(unsupported_problem(f"transaction set {tx.set_id!r}", tx.start, "ST"))
        return iter(())
    return mapper(tx, ctx, problems)


def map_transaction(tx: Transaction, ctx: MapContext) -> tuple[list[dict], list[Problem]]:
    """Map one checked transaction; unsupported sets yield one `unsupported_set` problem."""
    problems: list[Problem] = []
    records = list(stream_transaction(tx, ctx, problems))
    return records, problems
