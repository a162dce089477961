"""Map checked X12 transactions to parse-edi records: the set registry (`MAPPERS`) and `stream_transaction`.

Each mapper takes a `Transaction` (envelope already checked), a `MapContext` and a list for
its problems, and yields records as soon as each is final (`stream_transaction`; the list form
is `map_transaction`). A problem in one line (a quantity that is not a number, a unit that is
not a unit) drops that line's record and is reported; the rest of the transaction still loads.

    846, 852            positions       x12_positions
    856, 180            in_transit      x12_in_transit
    940, 944, 945, 947  movements       x12_warehouse

Speed (bench/bench_edi.py): segments arrive as text and each mapper splits them itself; the
846 / 856 lines that make up nearly all of a feed take a short path (one split, the usual
element count unpacked, one template copy per record), and everything else the general one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from invrecon.transforms.edi.errors import Problem
from invrecon.transforms.edi.records import MapContext, unsupported_problem
from invrecon.transforms.edi.x12_envelope import Transaction
from invrecon.transforms.edi.x12_in_transit import map_180, map_856
from invrecon.transforms.edi.x12_positions import map_positions
from invrecon.transforms.edi.x12_warehouse import map_940, map_944, map_945, map_947

__all__ = ["MAPPERS", "MapContext", "map_transaction", "stream_transaction"]


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
