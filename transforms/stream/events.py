"""Chain the event steps into `StockEvents`: canonicalize, de-duplicate, gate lateness; one quarantine out.

    RawEvent / RawChunk ─Canonicalize─▶ ─Dedup─▶ ─GateLateness─▶ admitted movements
                              │            │            │
                              └────────────┴────────────┴──FlattenQuarantine──▶ quarantine
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.stream.canonicalize import CanonicalizeEvents
from invrecon.transforms.stream.dedup import DropRepeatedEvents
from invrecon.transforms.stream.lateness import GateLateEvents
from invrecon.transforms.stream.params import AVAILABILITY_TAG, MOVEMENTS_TAG, QUARANTINE_TAG, CrosswalkFiles, StreamParams

__all__ = ["StockEvents"]


@dataclasses.dataclass(kw_only=True)
class StockEvents(beam.PTransform):
    """RawEvent / RawChunk -> admitted, de-duplicated movement tables (+ figures, quarantine).

    Attributes:
      params: the stream's settings.
      spec: the events source (its name and time zone).
      crosswalks: the crosswalk files the canonicalizer maps ids with.
      bounded: a replay of files on a batch runner (see the package docstring), not a live stream.
    """

    params: StreamParams
    spec: SourceSpec
    crosswalks: CrosswalkFiles
    bounded: bool = False

    def expand(self, raw):
        canon = raw | "Canonicalize" >> CanonicalizeEvents(params=self.params, spec=self.spec, crosswalks=self.crosswalks)
        deduped = canon[MOVEMENTS_TAG] | "Dedup" >> DropRepeatedEvents(params=self.params, bounded=self.bounded)
        gated = deduped[MOVEMENTS_TAG] | "GateLateness" >> GateLateEvents(params=self.params, bounded=self.bounded)
        quarantine = (
            (canon[QUARANTINE_TAG], deduped[QUARANTINE_TAG], gated[QUARANTINE_TAG])
            | "FlattenQuarantine" >> beam.Flatten()
        )
        return {MOVEMENTS_TAG: gated[MOVEMENTS_TAG], AVAILABILITY_TAG: canon[AVAILABILITY_TAG], QUARANTINE_TAG: quarantine}
