"""Read the lines of an X12 transaction for the set mappers: `Lines` (quantities, units, dates, ids, problems), id pairs, parties.

Every X12 mapper (`x12_positions`, `x12_in_transit`, `x12_warehouse`) builds one `Lines` per
transaction: a value that does not parse becomes a problem on that one line (`bad_quantity`,
`bad_uom`, `bad_date`, `missing_item_id`), never an exception, and the rest of the transaction
still loads.
"""

from __future__ import annotations

from collections.abc import Iterator

from invrecon.transforms.edi.errors import EdiError, Problem
from invrecon.transforms.edi.records import MapContext, base_record, no_records_problem
from invrecon.transforms.edi.values import choose_item_id, parse_number, x12_timestamp
from invrecon.transforms.edi.x12 import element_at as _at
from invrecon.transforms.edi.x12_envelope import Transaction

__all__ = ["SMALL_INTS", "Lines", "case_code", "first_party", "pairs", "party"]

# Quantities as written -> int for the common small ones: a dict hit is about half the cost
# of int() on a fresh string. Only canonical spellings are keys ("007" and "1000" miss and go
# through int(); so does "0", whose value is falsy in `small_int(v) or int(v)`).
SMALL_INTS = {str(n): n for n in range(1000)}


def pairs(seg: list[str], start: int, stop: int | None = None) -> list[dict[str, str]]:
    """(qualifier, id) pairs from element `start` on, both non-empty, ids as written."""
    end = len(seg) if stop is None else min(stop, len(seg))
    return [
        {"qualifier": seg[k], "id": seg[k + 1]}
        for k in range(start, end - 1, 2)
        if seg[k] and seg[k + 1]
    ]


def case_code(seg: list[str], i: int) -> list[dict[str, str]]:
    """The bare U.P.C. case code element of W01/W07/W12/W19, under the implied qualifier UC."""
    v = _at(seg, i)
    return [{"qualifier": "UC", "id": v}] if v else []


def first_party(parties: dict[str, str | None], entities: tuple[str, ...]) -> str | None:
    """The location of the first of `entities` that `parties` names (a loop: no generator)."""
    for entity in entities:
        location = parties.get(entity)
        if location:
            return location
    return None


def party(seg: list[str]) -> str | None:
    """N1 location: the coded id (N104) when given, else the name (N102)."""
    return _at(seg, 4) or _at(seg, 2) or None


class Lines:
    """One transaction's mapping: its base record, the helpers that read a line, and where
    problems (and, for mappers that resolve lines at the end, records) go.

    Mappers that resolve lines at the end (the warehouse sets, 180) `hold` each line with its ids
    and note the N1 parties (`add_party`); `done` emits the held lines with the transaction-level
    fields the header and the parties gave.
    """

    def __init__(self, tx: Transaction, ctx: MapContext, kind: str,
                 problems: list[Problem], **fields: object) -> None:
        self.tx = tx
        self.ctx = ctx
        self.base = base_record(kind, file=ctx.file, standard="x12", set_id=tx.set_id,
                                control=tx.control)
        self.base.update(fields)
        self.held: list[tuple[dict, int, list[dict[str, str]]]] = []
        self.parties: dict[str, str | None] = {}  # N1 entity code -> location (the first per code)
        self.records: list[dict] = []
        self.problems = problems
        self.comp = tx.delimiters.component if tx.delimiters else None

    def segments(self) -> Iterator[tuple[int, list[str]]]:
        """(index in the body, the split segment) of every body segment."""
        elem = self.tx.element
        for i, text in enumerate(self.tx.body):
            yield i, text.split(elem)

    def add_party(self, seg: list[str]) -> None:
        """An N1: the first location given for an entity code counts."""
        self.parties.setdefault(_at(seg, 1), party(seg))

    def party(self, entities: tuple[str, ...]) -> str | None:
        """The location of the first of `entities` the N1s named."""
        return first_party(self.parties, entities)

    def hold(self, rec: dict, i: int, ids: list[dict[str, str]]) -> None:
        """Keep a line's record until `done` (the header's fields may come after it)."""
        self.held.append((rec, i, ids))

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

    def done(self, **fields: object) -> Iterator[dict]:
        """Emit the held lines with `fields` set, then hand out the records (mappers that resolve lines at the end)."""
        for rec, i, ids in self.held:
            rec.update(fields)
            self.emit(rec, i, ids)
        yield from self.records
        self.finish(bool(self.records))
