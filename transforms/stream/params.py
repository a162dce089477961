"""Hold the stream's settings (`StreamParams`) and the names every step shares: tags, columns, units.

Every step of the stream (`transforms.stream`) takes one `StreamParams`, validated when it is
built, and passes movement batches that carry the in-flight columns named here beside MOVEMENT.
The steps that map ids take the two crosswalk files as one `CrosswalkFiles`. Both are keyword-only.
"""

from __future__ import annotations

import dataclasses
import zoneinfo

from invrecon.transforms import quarantine
from invrecon.transforms.crosswalks import Crosswalks, load_crosswalks
from invrecon.transforms.reconcile.classify import Tolerance

__all__ = [
    "ALERTS_TAG",
    "ARRIVAL",
    "AVAILABILITY_EVENT",
    "AVAILABILITY_TAG",
    "EXTRA_COLUMNS",
    "KEY",
    "MICROS",
    "MOVEMENTS_TAG",
    "NO_TIME",
    "QUARANTINE_TAG",
    "RAW",
    "TS",
    "UPDATES_TAG",
    "WM",
    "CrosswalkFiles",
    "StreamParams",
]

MOVEMENTS_TAG = "movements"
AVAILABILITY_TAG = "availability"
QUARANTINE_TAG = quarantine.TAG
ALERTS_TAG = "alerts"
UPDATES_TAG = "updates"

# A commerce channel publishes its available-to-sell on the event bus as
# {"event_type": "availability", ...}: an absolute figure, canonicalized like a count.
AVAILABILITY_EVENT = "availability"

MICROS = 1_000_000

# Columns a movement batch carries beside MOVEMENT until it is archived: the raw payload (for
# quarantine), the replay clock when it arrived, its event time in µs, and its arrival ordinal.
RAW, WM, TS, ARRIVAL = "_raw", "_wm", "_ts", "_arrival"
EXTRA_COLUMNS = (RAW, WM, TS, ARRIVAL)

# The key of a running position: the keyed steps bucket by it.
KEY = ["sku", "location"]

# Stand-in for "no base yet" in the position arithmetic (and "no clock yet" in a replay):
# earlier than any event.
NO_TIME = -(2**62)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamParams:
    """The stream's windowing, lateness, de-duplication and alert settings (validated).

    Attributes:
      window_minutes: fixed window size of the position changes.
      allowed_lateness_minutes: how long after a window's end its events are still applied.
      early_firing_seconds: processing-time delay of the early (speculative) panes.
      dedup_ttl_hours: how long an event_id is remembered; also how long a too-late event can
        still be told apart from nothing (later than that, Beam drops it unseen).
      record_system: system of record (DESIGN.md §4); its figures seed the position.
      alert_systems: systems whose reported figures (store counts, availability) are compared.
      tolerances: first-match tolerance rules of DESIGN.md §6.3 for the divergence alerts.
      min_alert_abs: a floor (in units) under those tolerances, so that a live stream need not
        page for a one-unit slip the nightly batch will classify anyway.
    """

    window_minutes: float = 15
    allowed_lateness_minutes: float = 60
    early_firing_seconds: float = 30
    dedup_ttl_hours: float = 48
    record_system: str = "erp"
    timezone: str = "UTC"
    source: str = "stock_events"
    alert_systems: tuple[str, ...] = ("store", "commerce")
    tolerances: tuple[Tolerance, ...] = ()
    min_alert_abs: float = 0
    run_id: str = ""
    # Hash buckets of every keyed step (de-dup, gate, position, changes): the parallelism of the
    # stream, and the batch size of each step (fewer buckets, bigger batches).
    gate_shards: int = 16

    def __post_init__(self) -> None:
        for name in ("window_minutes", "early_firing_seconds", "dedup_ttl_hours"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        if not self.allowed_lateness_minutes >= 0:
            raise ValueError(f"`allowed_lateness_minutes` must be >= 0, got {self.allowed_lateness_minutes!r}")
        if self.window_seconds % 1 or self.lateness_seconds % 1:
            raise ValueError("`window_minutes` and `allowed_lateness_minutes` must be whole seconds")
        if self.dedup_ttl_hours * 3600 < self.window_seconds + self.lateness_seconds:
            raise ValueError(
                "`dedup_ttl_hours` must cover at least one window plus the allowed lateness "
                f"({(self.window_seconds + self.lateness_seconds) / 3600:g} h)"
            )
        if not self.min_alert_abs >= 0:
            raise ValueError(f"`min_alert_abs` must be >= 0, got {self.min_alert_abs!r}")
        if self.gate_shards <= 0:
            raise ValueError("`gate_shards` must be > 0")
        zoneinfo.ZoneInfo(self.timezone)

    @property
    def window_seconds(self) -> int:
        return int(round(self.window_minutes * 60))

    @property
    def lateness_seconds(self) -> int:
        return int(round(self.allowed_lateness_minutes * 60))

    @property
    def ttl_seconds(self) -> int:
        return int(round(self.dedup_ttl_hours * 3600))


@dataclasses.dataclass(frozen=True, kw_only=True)
class CrosswalkFiles:
    """The two crosswalk files (URIs) the stream's steps map ids with; each worker loads them once.

    Attributes:
      sku: the SKU crosswalk (config `crosswalk.sku`).
      location: the location crosswalk (config `crosswalk.location`).
    """

    sku: str
    location: str

    def load(self) -> Crosswalks:
        """Read both files (in a DoFn's `setup`: never at graph construction)."""
        return load_crosswalks(self.sku, self.location)
