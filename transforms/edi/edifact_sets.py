"""Map checked EDIFACT messages to parse-edi records (DESADV, INVRPT, SLSRPT).

* DESADV -> in_transit: one per QTY+12 (despatched) under a LIN; shipment id BGM02; shipped at
  DTM+11 (else DTM+137); expected at DTM+17/132/2/358; from NAD SU/SE/CZ/SF, to NAD DP/ST/CN/BY
  (else LOC+11/7).
* INVRPT -> positions: QTY+145 (actual stock) on hand; location from the LOC after the QTY, the
  LOC in force, or NAD WH/GY; as-of DTM+366/194, else DTM+137.
* SLSRPT -> movements: QTY+153 (sold) per LIN under a LOC+162 store; a negative sold quantity is
  a return of the magnitude (EANCOM reports customer returns as negative sales).

Item ids: LIN03 (id:type) and every PIA id:type pair, except batch / serial numbers (PIA NB /
SN are not items). A PIA id without a type keeps qualifier None (as written).
"""

from __future__ import annotations

from collections.abc import Callable

from invrecon.transforms.edi.edifact import Message
from invrecon.transforms.edi.edifact import component as _c
from invrecon.transforms.edi.errors import EdiError, Problem
from invrecon.transforms.edi.records import MapContext, base_record, map_unit
from invrecon.transforms.edi.values import choose_item_id, edifact_timestamp, parse_number

__all__ = ["MAPPERS", "map_message"]

# PIA item number types (7143) that identify a batch or a unit, not an item.
NOT_ITEM_TYPES = frozenset({"NB", "SN", "BB"})
# DTM qualifiers (2005).
DESPATCH_DTM = ("11",)
DOCUMENT_DTM = ("137",)
EXPECTED_DTM = ("17", "132", "2", "358", "64")
AS_OF_DTM = ("366", "194", "90")
SALES_DTM = ("356", "91", "90")
# NAD party qualifiers (3035), best first.
FROM_PARTIES = ("SF", "CZ", "SU", "SE")
TO_PARTIES = ("DP", "ST", "CN", "BY")
STOCK_PARTIES = ("WH", "GY", "DP")
# QTY qualifiers (6063).
DESPATCHED_QTY = "12"
STOCK_QTY = "145"
SOLD_QTY = "153"


# A line read but not yet emitted: its record, its item ids and its index in the message body.
_Held = tuple[dict, list[dict[str, str | None]], int]


class _Msg:
    """Records and problems of one message, with the EDIFACT value helpers.

    A mapper reads the body once: `line` turns a QTY into a record (held until the header
    values it waits for are known), and `done` emits the held lines with them.
    """

    def __init__(self, msg: Message, ctx: MapContext, kind: str, **fields: object) -> None:
        self.msg = msg
        self.ctx = ctx
        self.base = base_record(kind, file=ctx.file, standard="edifact", set_id=msg.type,
                                control=msg.control)
        self.base.update(fields)
        self.held: list[_Held] = []
        self.records: list[dict] = []
        self.problems: list[Problem] = []

    def pos(self, i: int) -> int:
        return self.msg.start + 1 + i

    def problem(self, code: str, message: str, i: int, el: int | None = None,
                value: str | None = None) -> None:
        tag = self.msg.body[i][0][0]
        self.problems.append(Problem(code, message, self.pos(i), tag, el, value))

    def date(self, seg: list[list[str]], i: int) -> str | None:
        try:
            return edifact_timestamp(_c(seg, 1, 1), _c(seg, 1, 2))
        except EdiError as exc:
            self.problem("bad_date", f"DTM at segment {self.pos(i)}: {exc}", i, 1, _c(seg, 1, 1))
            return None

    def quantity(self, seg: list[list[str]], i: int) -> tuple[int | float, str | None] | None:
        """QTY+qualifier:value:unit -> (value, unit) or None after reporting the problem."""
        raw, unit = _c(seg, 1, 1), _c(seg, 1, 2).strip() or None
        try:
            q = parse_number(raw, decimal=self.msg.delimiters.decimal)
        except EdiError:
            what = "missing" if not raw.strip() else f"{raw!r} is not a number"
            self.problem("bad_quantity", f"QTY quantity {what} at segment {self.pos(i)}", i, 1, raw)
            return None
        if unit is not None and not (unit.isalnum() and len(unit) <= 8):
            self.problem("bad_uom", f"QTY unit {unit!r} at segment {self.pos(i)} is not a unit "
                         "code", i, 1, unit)
            return None
        return q, unit

    def line(self, seg: list[list[str]], i: int, ids: list[dict[str, str | None]], **fields: object) -> dict | None:
        """Hold the record of QTY segment `i` (quantity, unit, then `fields`) and return it; None after a problem."""
        got = self.quantity(seg, i)
        if got is None:
            return None
        rec = self.base.copy()
        rec.update(segment=self.pos(i), qty=got[0], uom=got[1], **fields)
        self.held.append((rec, ids, i))
        return rec

    def done(self, fill: dict[str, str | None] | None = None, **fields: object) -> tuple[list[dict], list[Problem]]:
        """Emit the held lines with the message's `fields` set, and `fill` where a line has no value of its own."""
        for rec, ids, i in self.held:
            rec.update(fields)
            for name, value in (fill or {}).items():
                rec[name] = rec[name] or value
            self.emit(rec, ids, i)
        return self.records, self.problems

    def emit(self, rec: dict, ids: list[dict[str, str | None]], i: int) -> None:
        if not ids:
            self.problem("missing_item_id", f"QTY at segment {self.pos(i)} has a quantity but its "
                         "line has no item id", i)
            return
        rec["item_ids"] = ids
        rec["item_id"], rec["item_id_qualifier"] = choose_item_id(ids, self.ctx.qualifiers)
        self.records.append(rec)


def _lin_ids(seg: list[list[str]]) -> list[dict[str, str | None]]:
    ident = _c(seg, 3)
    return [{"qualifier": _c(seg, 3, 1) or None, "id": ident}] if ident else []


def _pia_ids(seg: list[list[str]]) -> list[dict[str, str | None]]:
    out = []
    for el in seg[2:]:
        ident = el[0] if el else ""
        kind = el[1] if len(el) > 1 else ""
        if ident and kind not in NOT_ITEM_TYPES:
            out.append({"qualifier": kind or None, "id": ident})
    return out


def _first(parties: dict[str, str | None], order: tuple[str, ...]) -> str | None:
    return next((parties[p] for p in order if parties.get(p)), None)


def _party(seg: list[list[str]]) -> str | None:
    return _c(seg, 2) or _c(seg, 4) or None


def map_desadv(msg: Message, ctx: MapContext) -> tuple[list[dict], list[Problem]]:
    """DESADV -> in_transit records (see module docstring)."""
    out = _Msg(msg, ctx, "in_transit", qty_type="shipped")
    base = out.base
    parties: dict[str, str | None] = {}
    dates: dict[str, str | None] = {}
    ids: list[dict[str, str | None]] = []
    in_detail = False
    for i, seg in enumerate(msg.body):
        tag = seg[0][0]
        if tag == "LIN":
            in_detail = True
            ids = _lin_ids(seg)
        elif tag == "PIA" and in_detail:
            ids = ids + _pia_ids(seg)
        elif tag == "QTY" and _c(seg, 1) == DESPATCHED_QTY:
            out.line(seg, i, ids)
        elif tag == "BGM":
            base["shipment_id"] = base["reference"] = _c(seg, 2) or None
        elif tag == "DTM" and not in_detail:
            dates.setdefault(_c(seg, 1), out.date(seg, i))
        elif tag == "NAD" and not in_detail:
            parties.setdefault(_c(seg, 1), _party(seg))
        elif tag == "LOC" and not in_detail:
            parties.setdefault("LOC" + _c(seg, 1), _c(seg, 2) or None)
    return out.done(
        shipped_at=_first(dates, DESPATCH_DTM) or _first(dates, DOCUMENT_DTM), expected_at=_first(dates, EXPECTED_DTM),
        from_location=_first(parties, FROM_PARTIES), to_location=_first(parties, TO_PARTIES) or _first(parties, ("LOC11", "LOC7")),
    )


def map_invrpt(msg: Message, ctx: MapContext) -> tuple[list[dict], list[Problem]]:
    """INVRPT -> on-hand positions (see module docstring)."""
    out = _Msg(msg, ctx, "position", qty_type="on_hand")
    parties: dict[str, str | None] = {}
    dates: dict[str, str | None] = {}
    ids: list[dict[str, str | None]] = []
    location: str | None = None
    last: dict | None = None  # the last QTY record, which a LOC right after it locates
    for i, seg in enumerate(msg.body):
        tag = seg[0][0]
        if tag == "LIN":
            ids, last = _lin_ids(seg), None
        elif tag == "PIA":
            ids = ids + _pia_ids(seg)
        elif tag == "QTY":
            last = out.line(seg, i, ids, location=location) if _c(seg, 1) == STOCK_QTY else None
        elif tag == "LOC":
            if last is not None:
                last["location"] = _c(seg, 2) or None
            else:
                location = _c(seg, 2) or None
        elif tag == "DTM" and not out.held:
            dates.setdefault(_c(seg, 1), out.date(seg, i))
        elif tag == "NAD":
            parties.setdefault(_c(seg, 1), _party(seg))
    return out.done({"location": _first(parties, STOCK_PARTIES)}, as_of=_first(dates, AS_OF_DTM) or _first(dates, DOCUMENT_DTM))


def map_slsrpt(msg: Message, ctx: MapContext) -> tuple[list[dict], list[Problem]]:
    """SLSRPT -> sale / return movements per store (see module docstring)."""
    out = _Msg(msg, ctx, "movement", qty_type="sold")
    header_dates: dict[str, str | None] = {}
    location: str | None = None
    when: str | None = None
    ids: list[dict[str, str | None]] = []
    seen_loc = False
    for i, seg in enumerate(msg.body):
        tag = seg[0][0]
        if tag == "LIN":
            ids = _lin_ids(seg)
        elif tag == "PIA":
            ids = ids + _pia_ids(seg)
        elif tag == "QTY" and _c(seg, 1) == SOLD_QTY:
            rec = out.line(seg, i, ids, location=location, occurred_at=when)
            if rec is not None:  # a negative sale is a return of the magnitude
                q = rec["qty"]
                rec["qty"], rec["event_type"] = abs(q), "sale" if q >= 0 else "return"
        elif tag == "LOC":
            seen_loc = True
            location, when = _c(seg, 2) or None, None
        elif tag == "DTM":
            if seen_loc:
                if _c(seg, 1) in SALES_DTM:
                    when = out.date(seg, i)
            else:
                header_dates.setdefault(_c(seg, 1), out.date(seg, i))
    return out.done({"occurred_at": _first(header_dates, SALES_DTM) or _first(header_dates, DOCUMENT_DTM)})


MAPPERS: dict[str, Callable[[Message, MapContext], tuple[list[dict], list[Problem]]]] = {
    "DESADV": map_desadv,
    "INVRPT": map_invrpt,
    "SLSRPT": map_slsrpt,
}


def map_message(msg: Message, ctx: MapContext) -> tuple[list[dict], list[Problem]]:
    """Map one checked message; unsupported types yield one `unsupported_set` problem."""
    return map_unit(MAPPERS.get(msg.type), msg, ctx, kind=f"message type {msg.type!r}",
                    start=msg.start, tag="UNH")
