"""Rolling to the cut-off (DESIGN.md §6.1) and open in-transit lines, on hand-made rows."""

from __future__ import annotations

import datetime as dt

from invrecon.schemas import IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.reconcile.roll import latest_positions, open_in_transit, roll_to_cutoff
from tests.transforms.reconcile.helpers import AFTER_MIDNIGHT, EVENING, UTC, T, frame, mv, pos, shipment


def test_roll_forward_adds_movements_after_as_of_up_to_cutoff():
    at = dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    late = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)  # after the cut-off: not counted
    early = dt.datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # before the as-of: already in the figure
    latest = latest_positions(frame([pos("store", "A", "S1", 40, EVENING)], POSITION))
    rolled = roll_to_cutoff(latest, frame([mv("A", "S1", "sale", -3, at), mv("A", "S1", "sale", -1, late), mv("A", "S1", "sale", -5, early)], MOVEMENT), T)
    assert rolled["qty_t"].to_list() == [37]


def test_roll_back_when_as_of_is_after_cutoff_and_ignores_counts():
    after = dt.datetime(2026, 12, 1, 6, 10, tzinfo=UTC)
    latest = latest_positions(frame([pos("erp", "A", "S1", 37, AFTER_MIDNIGHT)], POSITION))
    moves = frame([mv("A", "S1", "sale", -1, after), mv("A", "S1", "count", 99, after + dt.timedelta(minutes=1))], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["qty_t"].to_list() == [38]


def test_count_resets_forward_roll_and_later_movements_add():
    c = dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    latest = latest_positions(frame([pos("store", "A", "S1", 40, EVENING)], POSITION))
    moves = frame([mv("A", "S1", "sale", -2, c - dt.timedelta(minutes=5)), mv("A", "S1", "count", 30, c), mv("A", "S1", "sale", -1, c + dt.timedelta(minutes=5))], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["qty_t"].to_list() == [29]


def test_reserved_rolls_with_reservations_and_releases():
    at = dt.datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    latest = latest_positions(frame([pos("erp", "A", "DC1", 100, EVENING, reserved=5)], POSITION))
    moves = frame([mv("A", "DC1", "reservation", 0, at, reserved_delta=3), mv("A", "DC1", "release", 0, at + dt.timedelta(minutes=1), reserved_delta=-1)], MOVEMENT)
    assert roll_to_cutoff(latest, moves, T)["reserved_t"].to_list() == [7]


def test_open_in_transit_partial_receipt_leaves_remainder():
    its = frame([shipment("S", "A", "DC1", "S1", 10)], IN_TRANSIT)
    rec = frame([mv("A", "S1", "receipt", 4, EVENING + dt.timedelta(hours=1), reference="S"), mv("A", "S1", "receipt", 6, T + dt.timedelta(hours=1), reference="S")], MOVEMENT)
    assert open_in_transit(its, rec, T)["qty"].to_list() == [6]


