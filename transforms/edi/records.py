"""The parse-edi record and error dicts (DESIGN.md §3) and the helpers that build them.

Every record dict has the same keys (`RECORD_FIELDS`), the ones that do not apply set to None,
so JSON Lines output and Arrow conversion see one schema. Mappings start from one `base` dict
per transaction (file, standard, set, control, header location / dates) and copy it per record:
copying a small dict is cheaper than building one key by key, and that is the hot path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS

__all__ = ["ERROR_FIELDS", "MapContext", "map_unit", "RECORD_FIELDS", "RECORD_KINDS", "base_record",
           "error_dict", "no_records_problem", "unsupported_problem"]

RECORD_KINDS = ("position", "in_transit", "movement")
RECORD_FIELDS = (
    "kind", "file", "standard", "set", "control", "segment",
    "item_id", "item_id_qualifier", "item_ids", "qty", "uom", "qty_type",
    "location", "from_location", "to_location", "shipment_id", "event_type", "reference",
    "as_of", "occurred_at", "shipped_at", "expected_at",
)
ERROR_FIELDS = ("kind", "file", "code", "message", "control", "segment")



def _empty_record() -> dict:
    """Every field None, as a plain dict whose key table is shared (a "split" dict).

    Mappers build each record by copying a template of this dict. CPython keeps the keys of an
    instance's `__dict__` in one table shared by all its copies, so a copy is a 22-slot value
    array (~300 bytes) instead of a private key table (~830 bytes): a record costs about a
    third less to build and free, which is most of what a record costs. The result is an
    ordinary `dict` (same type, keys in `RECORD_FIELDS` order); on an interpreter that does
    not share keys it is simply an ordinary dict.
    """

    class _Record:
        pass

    holder = _Record()
    for name in RECORD_FIELDS:
        setattr(holder, name, None)
    return holder.__dict__


_EMPTY = _empty_record()


@dataclasses.dataclass(frozen=True, slots=True)
class MapContext:
    """What a mapper needs besides the transaction: the file name and the qualifier map."""

    file: str
    qualifiers: Mapping[str, str] = dataclasses.field(default_factory=lambda: DEFAULT_QUALIFIERS)


def base_record(
    kind: str, *, file: str, standard: str, set_id: str, control: Mapping[str, str | None]
) -> dict:
    """Return a record dict with the per-transaction fields set and every other field None."""
    rec = _EMPTY.copy()
    rec["kind"] = kind
    rec["file"] = file
    rec["standard"] = standard
    rec["set"] = set_id
    rec["control"] = dict(control)
    return rec


def error_dict(problem: Problem, *, file: str, control: Mapping[str, str | None] | None) -> dict:
    """Turn a `Problem` into the parse-edi error dict."""
    return {
        "kind": "error",
        "file": file,
        "code": problem.code,
        "message": problem.message,
        "control": dict(control) if control else {"interchange": None, "group": None,
                                                   "transaction": None},
        "segment": problem.segment,
    }


def unsupported_problem(kind: str, start: int, tag: str) -> Problem:
    """The informational problem for a well-formed unit of a set nobody maps."""
    return Problem("unsupported_set", f"{kind} ({tag} at segment {start}) is not mapped by invrecon",
                   start, tag)


def no_records_problem(kind: str, start: int, tag: str) -> Problem:
    """The informational problem for a mapped unit that yielded neither records nor problems."""
    return Problem("no_records", f"{kind} ({tag} at segment {start}) has no line this pipeline "
                   "extracts", start, tag)


def map_unit(
    mapper: Callable[[Any, MapContext], tuple[list[dict], list[Problem]]] | None,
    unit: Any,
    ctx: MapContext,
    *,
    kind: str,
    start: int,
    tag: str,
) -> tuple[list[dict], list[Problem]]:
    """Run `mapper` on a checked transaction / message, so nothing is skipped silently.

    No mapper: one informational `unsupported_set` problem. A mapper that found neither records
    nor problems: one informational `no_records` problem.
    """
    if mapper is None:
        return [], [unsupported_problem(kind, start, tag)]
    records, problems = mapper(unit, ctx)
    if not records and not problems:
        problems = [no_records_problem(kind, start, tag)]
    return records, problems
