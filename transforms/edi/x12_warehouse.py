"""Map X12 warehouse documents to movement records: 940 reservations, 944 receipts, 945 shipments, 947 adjustments.

All four share one shape (`_warehouse`): a header segment (W05 / W17 / W06 / W15) with the
reference and date, N1 parties (the warehouse, the counterparty), then line segments (W01 / W07 /
W12 / W19) with a quantity, a unit and the item's ids. Movements carry magnitudes except
adjustments, which are signed: a 947 W19 quantity keeps the sign written, and a reason code that
can only lower stock (damaged, destroyed, recalled...) makes an unsigned quantity negative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import MapContext
from invrecon.transforms.edi.x12 import element_at as _at
from invrecon.transforms.edi.x12_envelope import Transaction
from invrecon.transforms.edi.x12_lines import Lines, case_code, pairs

__all__ = ["map_940", "map_944", "map_945", "map_947"]

# 947 W19 reason codes that can only lower stock; an unsigned quantity with one is negated.
DECREASE_REASONS = frozenset(
    {"04", "05", "07", "53", "AI", "AU", "AV", "AW", "AX", "BS", "CD", "AR"}
)
# N1 entity codes of the warehouse a document is about, best first.
WAREHOUSE = ("WH", "SF")
# 944 W1701 reporting code C = customer return (everything else is a receipt).
RETURN_REPORTING = "C"


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
    header: Callable[[Lines, list[str], int], None],
    header_tag: str,
    counterparty: tuple[str, ...],
    signed: Callable[[list[str], int | float], int | float] | None = None,
) -> Iterator[dict]:
    """The shared shape of 940/944/945/947: a header, N1 parties, then line segments."""
    out = Lines(tx, ctx, "movement", problems, event_type=event_type, qty_type=qty_type)
    base = out.base
    for i, seg in out.segments():
        tag = seg[0]
        if tag == line.tag:
            rec = out.line(base, seg, i, line.qty, line.uom)
            if rec is None:
                continue
            if signed is not None:
                rec["qty"] = signed(seg, rec["qty"])
            ids = case_code(seg, line.case_code)
            for el in line.pairs:
                ids += pairs(seg, el, el + 2)
            out.hold(rec, i, ids)
        elif tag == "N1":
            out.add_party(seg)
        elif tag == header_tag:
            header(out, seg, i)
        elif tag == "G62" and event_type == "shipment" and _at(seg, 1) in ("11", "10"):
            # 945 G62 11 = shipped on this date (G6203/04 the time)
            base["occurred_at"] = out.timestamp(_at(seg, 2), _at(seg, 4), _at(seg, 5), i, "G62")
    if base["occurred_at"] is None:
        base["occurred_at"] = out.group_time()
    other = "to_location" if event_type in ("shipment", "reservation") else "from_location"
    yield from out.done(location=out.party(WAREHOUSE), occurred_at=base["occurred_at"], **{other: out.party(counterparty)})


def _w05(out: Lines, seg: list[str], i: int) -> None:
    out.base["reference"] = _at(seg, 2) or _at(seg, 3) or None


def _w06(out: Lines, seg: list[str], i: int) -> None:
    shipment = _at(seg, 4) or None
    out.base["shipment_id"] = shipment
    out.base["reference"] = shipment or _at(seg, 2) or None
    if out.base["occurred_at"] is None:
        out.base["occurred_at"] = out.timestamp(_at(seg, 3), "", "", i, "W06")


def _w17(out: Lines, seg: list[str], i: int) -> None:
    shipment = _at(seg, 5) or None
    out.base["shipment_id"] = shipment
    out.base["reference"] = shipment or _at(seg, 3) or None
    out.base["occurred_at"] = out.timestamp(_at(seg, 2), _at(seg, 7), "", i, "W17")
    if _at(seg, 1) == RETURN_REPORTING:
        out.base["event_type"] = "return"


def _w15(out: Lines, seg: list[str], i: int) -> None:
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
