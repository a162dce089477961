"""Map X12 846 (inventory inquiry / advice) and 852 (product activity data) transactions to position records.

Worked example (846, the synthetic world's warehouse feed):

    BIA*00*MM*R1*20261130*2000      as_of 2026-11-30T20:00:00 for every line
    N1*WH*Main DC*92*DC01           location DC01
    LIN**UP*012345678905            item_id 012345678905 (UP), the only id
    QTY*17*40*EA                    -> position on_hand 40 EA
    QTY*33*35*EA                    -> position available 35 EA

Speed (bench/bench_edi.py): QTY and LIN, nearly every segment of a feed, take a short path (one
split, the usual element count unpacked, one template copy per record).
"""

from __future__ import annotations

from collections.abc import Iterator

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.values import choose_item_id
from invrecon.transforms.edi.x12 import element_at as _at
from invrecon.transforms.edi.x12_envelope import Transaction
from invrecon.transforms.edi.x12_lines import SMALL_INTS, Lines, pairs, party

__all__ = ["map_positions"]

# 846 / 852 QTY01 qualifiers that are positions; others (34, QH, 63 ...) are not stock figures.
POSITION_QTY = {"17": "on_hand", "33": "available"}
# 852 ZA01 activity codes that are positions (QA = current inventory available for sale).
POSITION_ZA = {"QA": "available"}
# N1 entity codes naming the location a report or a warehouse document is about, best first.
LOCATION_ENTITIES = ("WH", "RL", "SN", "ST")
# 846 DTM qualifiers that date the inventory itself (effective / as-of), preferred over BIA.
AS_OF_DTM = ("007", "405", "366")


def map_positions(tx: Transaction, ctx: MapContext, problems: list[Problem]) -> Iterator[dict]:  # noqa: C901 (the hot path stays inline: see below)
    """846 / 852 -> one position per (item, location, qty qualifier).

    Location: an SCH / SDQ breakdown after a QTY (one record per location, replacing the total),
    else N1 in the item loop, else the header N1 (WH, RL, SN, ST). Unit: QTY03, else the UIT
    right after the QTY, else the item's UIT. As-of: DTM 007/405/366, else BIA04/05 (846) or
    XQ03/XQ02 (852), else DTM 097.

    Records are yielded as soon as they are final (the last QTY's waits for the next segment:
    a UIT may still give its unit, an SCH / SDQ replace it); problems go to `problems`.
    """
    # Longer than most functions on purpose: QTY and LIN are nearly every segment of a feed, and
    # reading them here, with locals and no call, is a fifth of the parse time (bench_edi); every
    # other segment, and every QTY not in the usual shape, goes to `_Report`.
    report = _Report(tx, ctx, problems)
    base, elem, first, qualifiers = report.base, tx.element, tx.start + 1, ctx.qualifiers
    position_qty, small_int = POSITION_QTY.get, SMALL_INTS.get
    ids: list[dict[str, str]] | None = None  # the item's ids (None: before any LIN)
    item_base, item_uom, in_detail = base, None, False
    pending: dict | None = None  # the last QTY record: a UIT may give its unit, SCH split it
    split_from: dict | None = None  # the QTY total that SCH / SDQ lines are breaking down
    emitted = False
    for i, text in enumerate(tx.body):
        seg = text.split(elem)
        tag = seg[0]
        if pending is not None and tag != "UIT" and tag != "SCH" and tag != "SDQ":
            yield pending
            emitted, pending = True, None
        if tag == "QTY":
            split_from = None
            n = len(seg)
            if ids is None or n < 3:
                continue  # a header QTY (before any LIN) is not a position
            q, v, u = seg[1], seg[2], seg[3] if n > 3 else ""  # qualifier, quantity, unit
            qty_type = position_qty(q)
            if qty_type is None:
                continue
            if ids and v.isdecimal() and len(u) == 2 and u.isalnum():  # the common case, kept cheap
                pending = item_base.copy()
                pending["segment"] = first + i
                pending["qty"] = small_int(v) or int(v)
                pending["uom"] = u
                pending["qty_type"] = qty_type
            else:
                pending = report.qty(seg, i, qty_type, ids=ids, item_base=item_base, item_uom=item_uom)
        elif tag == "LIN":
            split_from = None
            if in_detail:  # records are copies of item_base: only location and the ids differ from base
                item_base["location"] = base["location"]
            else:
                in_detail, item_base = True, report.start_detail()
            if len(seg) == 4 and seg[2] and seg[3]:  # one id: no choice to make
                ids = [{"qualifier": seg[2], "id": seg[3]}]
                item_base["item_id"], item_base["item_id_qualifier"] = seg[3], seg[2]
            else:
                ids = pairs(seg, 2)
                item_base["item_id"], item_base["item_id_qualifier"] = choose_item_id(ids, qualifiers)
            item_base["item_ids"], item_uom = ids, None
        elif tag == "UIT":
            item_uom = report.uit(seg, i, pending, item_uom)
        elif tag == "SCH" or tag == "SDQ":
            if pending is not None:  # the total is replaced by its per-location breakdown
                split_from, pending = pending, None
            for rec in report.breakdown(seg, i, split_from, item_base):
                yield rec
                emitted = True
        else:
            split_from = None  # (it is None before the item loop, where BIA and XQ sit, anyway)
            rec = report.other(seg, tag, i, in_detail=in_detail, ids=ids, item_base=item_base, item_uom=item_uom)
            if rec is not None:
                yield rec
                emitted = True
    if pending is not None:
        yield pending
        emitted = True
    report.out.finish(emitted)


class _Report:
    """The header of one 846 / 852 (location, dates) and the reading of its less common segments."""

    def __init__(self, tx: Transaction, ctx: MapContext, problems: list[Problem]) -> None:
        self.out = Lines(tx, ctx, "position", problems)
        self.base = self.out.base
        self.first = tx.start + 1
        self.header_loc: dict[str, str | None] = {}
        self.as_of_dtm: str | None = None
        self.as_of_doc: str | None = None
        self.as_of_created: str | None = None

    def start_detail(self) -> dict:
        """At the first LIN: fix the header's as-of and location; return the first item's template."""
        base = self.base
        base["as_of"] = self.as_of_dtm or self.as_of_doc or self.as_of_created
        base["location"] = next((self.header_loc[e] for e in LOCATION_ENTITIES if self.header_loc.get(e)), None)
        return base.copy()

    def qty(self, seg: list[str], i: int, qty_type: str, *, ids: list, item_base: dict, item_uom: str | None) -> dict | None:
        """The position record of a QTY of the item loop not in the usual shape, or None (a bad line)."""
        if not ids:
            self.out.problem("missing_item_id", f"QTY at segment {self.first + i} has no LIN item id", i, "QTY")
            return None
        rec = self.out.line(item_base, seg, i, 2, 3)
        if rec is None:
            return None
        if rec["uom"] is None:
            rec["uom"] = item_uom
        rec["qty_type"] = qty_type
        return rec

    def uit(self, seg: list[str], i: int, pending: dict | None, item_uom: str | None) -> str | None:
        """A unit: the held QTY's when it has none, else the item's; returns the item's unit."""
        ok, uom = self.out.uom(seg, 1, i)
        if pending is not None and pending["uom"] is None:
            pending["uom"] = uom
            return item_uom
        return uom

    def other(self, seg: list[str], tag: str, i: int, *, in_detail: bool, ids: list | None, item_base: dict,
              item_uom: str | None) -> dict | None:
        """ZA (852 activity: a position record or None), N1 (a location), DTM, BIA and XQ (the as-of)."""
        out = self.out
        if tag == "ZA":
            qty_type = POSITION_ZA.get(_at(seg, 1))
            if qty_type is None or not in_detail or not ids:
                return None
            rec = out.line(item_base, seg, i, 2, 3)
            if rec is not None:
                rec["uom"] = rec["uom"] or item_uom
                rec["qty_type"] = qty_type
            return rec
        if tag == "N1":
            if not in_detail:
                self.header_loc.setdefault(_at(seg, 1), party(seg))
            elif _at(seg, 1) in LOCATION_ENTITIES and item_base is not self.base:
                item_base["location"] = party(seg)
        elif in_detail:
            pass
        elif tag == "DTM":
            if _at(seg, 1) in AS_OF_DTM and self.as_of_dtm is None:
                self.as_of_dtm = out.dtm(seg, i)
            elif self.as_of_created is None:
                self.as_of_created = out.dtm(seg, i)
        elif tag == "BIA":
            self.as_of_doc = out.timestamp(_at(seg, 4), _at(seg, 5), "", i, "BIA")
        elif tag == "XQ":
            self.as_of_doc = out.timestamp(_at(seg, 3) or _at(seg, 2), "", "", i, "XQ")
        return None

    def breakdown(self, seg: list[str], i: int, total: dict | None, item_base: dict) -> list[dict]:
        """SCH (one location) or SDQ (up to 10 location/qty pairs) splitting the QTY `total` (None: the item's on hand)."""
        out = self.out
        template = total if total is not None else dict(item_base, qty_type="on_hand")
        if seg[0] == "SCH":  # SCH01 qty, SCH02 unit, SCH03 entity code, SCH04 name
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
