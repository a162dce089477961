"""Map X12 856 (ship notice) and 180 (return merchandise authorization) transactions to in_transit records.

An 856 is a tree of HL levels (shipment S > order O > tare T > pack P > item I); an item's
ship-from / ship-to are the nearest N1s up its chain. Worked example:

    BSN*00*SHP1*20261130*1015       shipment_id SHP1, shipped_at 2026-11-30T10:15 (unless DTM 011)
    HL*1**S                         the shipment
    N1*SF*Main DC*92*DC01           ship-from DC01
    N1*ST*Store*92*S001             ship-to S001
    HL*2*1*O / HL*3*2*I             an order, and an item under it
    LIN**UP*012345678905            item_id 012345678905 (UP)
    SN1**12*EA                      -> in_transit 12 EA from DC01 to S001

Speed (bench/bench_edi.py): HL, LIN and SN1, nearly every segment of a ship notice, take a short
path (one split, the usual element count unpacked, the item's ends looked up once per HL).
"""

from __future__ import annotations

from collections.abc import Iterator

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.values import choose_item_id
from invrecon.transforms.edi.x12 import element_at as _at
from invrecon.transforms.edi.x12_envelope import Transaction
from invrecon.transforms.edi.x12_lines import SMALL_INTS, Lines, first_party, pairs, party

__all__ = ["map_180", "map_856"]

# 856 / 180 ship-from and ship-to entity codes, best first.
FROM_ENTITIES = ("SF", "SH", "SU", "SE")
TO_ENTITIES = ("ST", "WH")
# 180 N1 (and N9 WH) entity codes: where a return comes from and goes to, best first.
RETURN_FROM = ("SF", "SH", "BY")
RETURN_TO = ("WH", "ST")
# 856 DTM qualifiers: shipped, and estimated / scheduled delivery.
SHIPPED_DTM = "011"
EXPECTED_DTM = ("017", "067", "002")
# HL03 level codes in hierarchy order; an HL without HL02 hangs under the last higher level.
HL_RANK = {"S": 0, "O": 1, "T": 2, "P": 3, "Q": 3, "I": 4}


def map_856(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:  # noqa: C901 (the hot path stays inline: see below)
    """856 -> one in_transit record per item (LIN + SN1) in the HL tree.

    The shipment id is BSN02; shipped_at is DTM 011, else BSN03/BSN04; ship-from / ship-to come
    from the nearest N1 SF/SH and ST up the item's HL chain (`_HlTree`).
    """
    # Longer than most functions on purpose: HL, LIN and SN1 are nearly every segment of a ship
    # notice, and reading LIN and the usual SN1 here, with locals and no call, keeps the 856 as
    # fast as it was (bench_edi); the HL tree and the dates have their own steps.
    out = Lines(tx, ctx, "in_transit", problems)
    base = out.base
    base["qty_type"] = "shipped"
    tree = _HlTree()
    resolved, parties = tree.resolved, tree.parties
    elem, first, small_int = tx.element, tx.start + 1, SMALL_INTS.get
    hl = level = hl_up = ""
    bsn_time = shipped = expected = None
    ids: list[dict[str, str]] | None = None
    waiting: tuple[dict, int] | None = None  # an SN1 seen before its LIN
    emitted = False
    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        if tag == "SN1":
            if len(seg) > 3 and ids and len(ids) == 1 and seg[2].isdecimal() and len(seg[3]) == 2 and seg[3].isalnum():
                rec = base.copy()  # the common case, kept cheap
                rec["segment"] = first + i
                rec["qty"] = small_int(seg[2]) or int(seg[2])
                rec["uom"] = seg[3]
                rec["item_ids"] = ids
                rec["item_id"], rec["item_id_qualifier"] = ids[0]["id"], ids[0]["qualifier"]
                got = resolved.get(hl)
                if got is None:
                    # ends(hl) for an item HL without N1s of its own is its parent's
                    # (inlined: the call is most of the cost of a ship notice line)
                    got = resolved.get(hl_up) if hl not in parties else None
                    if got is None:
                        got = tree.ends(hl)
                    else:
                        resolved[hl] = got
                rec["from_location"], rec["to_location"] = got
            else:
                rec = out.line(base, seg, i, 2, 3)
                if rec is None:
                    continue
                if not ids:
                    waiting = (rec, i)
                    continue
                _identify(rec, ids, ctx, tree.ends(hl))
        elif tag == "LIN":
            ids = [{"qualifier": seg[2], "id": seg[3]}] if len(seg) == 4 and seg[2] and seg[3] else pairs(seg, 2)
            if waiting is None or not ids:
                continue
            rec, waiting = _identify(waiting[0], ids, ctx, tree.ends(hl)), None
        else:
            if tag == "HL":
                if waiting is not None:
                    out.emit(waiting[0], waiting[1], None)  # an SN1 without a LIN: missing_item_id
                    waiting = None
                hl, hl_up, level = tree.open(seg)
                ids = None
            elif tag == "N1":
                tree.add_party(hl, seg)
            elif tag == "DTM" and level in ("", "S"):  # order / item dates do not date the shipment
                shipped, expected = _ship_dates(out, seg, i, shipped, expected)
            elif tag == "BSN":
                base["shipment_id"] = base["reference"] = _at(seg, 2) or None
                bsn_time = out.timestamp(_at(seg, 3), _at(seg, 4), "", i, "BSN")
            continue
        rec["shipped_at"] = shipped or bsn_time
        rec["expected_at"] = expected
        yield rec
        emitted = True
    if waiting is not None:
        out.emit(waiting[0], waiting[1], None)
    out.finish(emitted)


def _identify(rec: dict, item_ids: list[dict[str, str]], ctx: MapContext, ends: tuple[str | None, str | None]) -> dict:
    """`rec` with the item's ids (the preferred one as `item_id`) and the HL's (from, to)."""
    rec["item_ids"] = item_ids
    rec["item_id"], rec["item_id_qualifier"] = choose_item_id(item_ids, ctx.qualifiers)
    rec["from_location"], rec["to_location"] = ends
    return rec


def _ship_dates(out: Lines, seg: list[str], i: int, shipped: str | None, expected: str | None) -> tuple[str | None, str | None]:
    """(shipped, expected) after a shipment-level DTM: the first 011, the first 017 / 067 / 002."""
    q = _at(seg, 1)
    if q == SHIPPED_DTM and shipped is None:
        shipped = out.dtm(seg, i)
    elif q in EXPECTED_DTM and expected is None:
        expected = out.dtm(seg, i)
    return shipped, expected


class _HlTree:
    """An 856's HL levels as read so far: each HL's parent and parties, and the (from, to) each resolves to."""

    def __init__(self) -> None:
        self.parties: dict[str, dict[str, str | None]] = {"": {}}  # HL id -> {entity: location}
        self.parent: dict[str, str] = {}
        # The open HLs, outermost first, as two parallel lists (rank, id): ranks strictly rise, so
        # an HL of rank r closes every open HL of rank >= r and hangs under the one left on top.
        self.stack_ranks: list[int] = []
        self.stack_ids: list[str] = []
        self.resolved: dict[str, tuple[str | None, str | None]] = {}

    def open(self, seg: list[str]) -> tuple[str, str, str]:
        """Open an HL: (its id, its parent's id, its level). It closes the open HLs of its rank or lower;
        without HL02 it hangs under the most recent HL of a higher level (S > O > T > P > I)."""
        n = len(seg)
        if n == 4:  # HL01 id, HL02 parent, HL03 level: the usual shape
            _, hl, up, level = seg
        else:
            hl = seg[1] if n > 1 else ""
            up = seg[2] if n > 2 else ""
            level = seg[3] if n > 3 else ""
        rank = HL_RANK.get(level, 3)
        ranks, ids = self.stack_ranks, self.stack_ids
        if ranks and ranks[-1] == rank:
            # a sibling of the last HL (the next item): it takes that HL's place
            ids[-1] = hl
            if not up:
                up = ids[-2] if len(ids) > 1 else ""
        else:
            while ranks and ranks[-1] >= rank:
                ranks.pop()
                ids.pop()
            if not up:
                up = ids[-1] if ids else ""
            ranks.append(rank)
            ids.append(hl)
        self.parent[hl] = up
        self.resolved.pop(hl, None)
        return hl, up, level

    def add_party(self, hl: str, seg: list[str]) -> None:
        """An N1 of HL `hl` (the first per entity code counts); the resolved ends are stale then."""
        self.parties.setdefault(hl, {}).setdefault(_at(seg, 1), party(seg))
        self.resolved.clear()

    def ends(self, h: str, depth: int = 0) -> tuple[str | None, str | None]:
        """(from, to) for HL `h`: its own N1s, else its parent's (cached per HL)."""
        got = self.resolved.get(h)
        if got is not None:
            return got
        up = self.parent.get(h, "" if h else None)
        frm = to = None
        if up is not None and depth < 64:  # HL02 loops in bad files end here
            frm, to = self.resolved.get(up) or self.ends(up, depth + 1)
        own = self.parties.get(h)
        if own:
            frm = first_party(own, FROM_ENTITIES) or frm
            to = first_party(own, TO_ENTITIES) or to
        self.resolved[h] = (frm, to)
        return frm, to


def map_180(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:
    """180 -> in_transit returns inbound: one per BLI (id pair, qty, unit; more ids from BLI08).

    The RMA number (BGN02) is the shipment id; shipped_at is BGN03/04; the return goes to N1 WH /
    N9 WH / N1 ST and comes from N1 SF / SH / BY.
    """
    out = Lines(tx, ctx, "in_transit", problems, event_type="return", qty_type="returned")
    base = out.base
    for i, seg in out.segments():
        tag = seg[0]
        if tag == "BGN":
            base["shipment_id"] = base["reference"] = _at(seg, 2) or None
            base["shipped_at"] = out.timestamp(_at(seg, 3), _at(seg, 4), "", i, "BGN")
        elif tag == "N1":
            out.add_party(seg)
        elif tag == "N9" and _at(seg, 1) == "WH":
            out.parties.setdefault("WH", _at(seg, 2) or None)
        elif tag == "BLI":
            rec = out.line(base, seg, i, 3, 4)
            if rec is not None:
                out.hold(rec, i, pairs(seg, 1, 3) + pairs(seg, 8))
    yield from out.done(from_location=out.party(RETURN_FROM), to_location=out.party(RETURN_TO))
