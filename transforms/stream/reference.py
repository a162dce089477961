"""Keep the per-event reference path the tests and the bench hold the columnar stream to.

`parse_raw_event` and `read_event_lines` parse one payload at a time (what `decode_chunk` and
`read_event_chunks` do for a chunk); `PositionBook` keeps one position one movement at a time
(what `apply_movements` does for a batch). The graph uses none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from invrecon.transforms.readers.events import parse_event
from invrecon.transforms.stream.quarantine import quarantine_row
from invrecon.transforms.stream.raw import RawEvent, event_time_micros
from invrecon.transforms.stream.replay import clock_list, read_event_chunks

__all__ = ["PositionBook", "parse_raw_event", "read_event_lines"]


def parse_raw_event(raw: RawEvent, *, timezone: str, source: str) -> tuple[dict | None, int | None, dict | None]:
    """Parse one payload: (fields, event time µs, None) or (None, None, quarantine row).

    The event time comes from `occurred_at`; one that does not parse is `bad_timestamp` here,
    because an event without a time cannot be windowed.
    """
    fields, err = parse_event(raw.text, locator=raw.locator)
    if err is not None:
        code, reason = err
        where = f"{raw.file}: " if raw.file else ""
        return None, None, quarantine_row(source=source, file=raw.file, locator=raw.locator, code=code, reason=where + reason, raw=raw.text)
    ts = event_time_micros(fields["occurred_at"], timezone=timezone)
    if ts is None:
        reason = f"{raw.locator}: field occurred_at: {fields['occurred_at']} is not an ISO 8601 timestamp"
        return None, None, quarantine_row(source=source, file=raw.file, locator=raw.locator, code="bad_timestamp", reason=reason, raw=raw.text)
    fields["_file"] = raw.file
    fields["_wm"] = raw.replay_watermark
    return fields, ts, None


def read_event_lines(uri: str, *, timezone: str) -> Iterator[RawEvent]:
    """Yield the non-blank lines of one JSON Lines file as RawEvents with a replay watermark."""
    for c in read_event_chunks(uri, timezone=timezone):
        for text, n, wm in zip(c.texts.to_list(), c.numbers.to_list(), clock_list(c.replay_watermarks, len(c.texts))):
            yield RawEvent(text, uri, f"line {n}", wm)


@dataclasses.dataclass
class PositionBook:
    """The running position of one (sku, location), correct under out-of-order events.

    A base (a snapshot seed, or the latest `count`) fixes on_hand at an instant; movements after
    that instant add to it, movements at or before it are already in it (DESIGN.md §6.1: a count
    at an instant includes everything that happened at that instant). Reserved has its own base
    (the seed) and moves by reservation / release. Movements are kept until a newer base makes
    them irrelevant or `compact` folds them in, so a late count still corrects the position.

    Example:
        >>> b = PositionBook()
        >>> b.seed(on_hand=10, reserved=0, as_of=100)
        >>> b.apply(ts=200, qty=-3, reserved_delta=0, is_count=False)   # sale of 3
        (-3, 0)
        >>> b.apply(ts=300, qty=5, reserved_delta=0, is_count=True)     # count finds 5
        (-2, 0)
        >>> b.apply(ts=250, qty=-1, reserved_delta=0, is_count=False)   # late sale, before the count
        (0, 0)
        >>> b.on_hand, b.seeded
        (5, True)
    """

    base_on_hand: int = 0
    base_on_hand_at: int | None = None
    base_reserved: int = 0
    base_reserved_at: int | None = None
    pending: list = dataclasses.field(default_factory=list)  # (ts, qty, reserved_delta)
    seeded: bool = False
    # Running sums of the pending movements after each base: O(1) per ordinary movement.
    _after_on_hand: int = 0
    _after_reserved: int = 0

    @property
    def on_hand(self) -> int:
        return self.base_on_hand + self._after_on_hand

    @property
    def reserved(self) -> int:
        return self.base_reserved + self._after_reserved

    @property
    def has_base(self) -> bool:
        return self.base_on_hand_at is not None

    def seed(self, *, on_hand: int | None, reserved: int | None, as_of: int) -> None:
        """Start from a snapshot figure taken at `as_of` (only a newer base replaces a base)."""
        if on_hand is not None and (self.base_on_hand_at is None or as_of >= self.base_on_hand_at):
            self.base_on_hand, self.base_on_hand_at = int(on_hand), as_of
            self.seeded = True
        if self.base_reserved_at is None or as_of >= self.base_reserved_at:
            self.base_reserved, self.base_reserved_at = int(reserved or 0), as_of
        self._rebase()

    def apply(self, *, ts: int, qty: int, reserved_delta: int, is_count: bool) -> tuple[int, int]:
        """Apply one movement; return its effect (on_hand change, reserved change) right now."""
        before_oh, before_r = self.on_hand, self.reserved
        if is_count:
            if self.base_on_hand_at is None or ts > self.base_on_hand_at:
                self.base_on_hand, self.base_on_hand_at = int(qty), ts
            if reserved_delta:
                self.pending.append((ts, 0, int(reserved_delta)))
            self._rebase()
        else:
            self.pending.append((ts, int(qty), int(reserved_delta)))
            if self.base_on_hand_at is None or ts > self.base_on_hand_at:
                self._after_on_hand += int(qty)
            if self.base_reserved_at is None or ts > self.base_reserved_at:
                self._after_reserved += int(reserved_delta)
        return self.on_hand - before_oh, self.reserved - before_r

    def compact(self, *, before: int) -> None:
        """Fold movements older than `before` into the bases.

        Safe once no base (count) older than `before` can still arrive: every later base is newer
        than all of them and would supersede them together.
        """
        old = [p for p in self.pending if p[0] < before]
        if not old:
            return
        oh_at, r_at = self.base_on_hand_at, self.base_reserved_at
        self.base_on_hand += sum(q for t, q, _ in old if oh_at is None or t > oh_at)
        self.base_reserved += sum(r for t, _, r in old if r_at is None or t > r_at)
        self.pending = [p for p in self.pending if p[0] >= before]
        self._rebase()

    def _rebase(self) -> None:
        """Drop movements every base covers and recompute the sums after each base."""
        oh_at, r_at = self.base_on_hand_at, self.base_reserved_at
        if oh_at is not None and r_at is not None:
            floor = min(oh_at, r_at)
            self.pending = [p for p in self.pending if p[0] > floor]
        self._after_on_hand = sum(q for t, q, _ in self.pending if oh_at is None or t > oh_at)
        self._after_reserved = sum(r for t, _, r in self.pending if r_at is None or t > r_at)
