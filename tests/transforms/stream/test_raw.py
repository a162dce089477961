"""Raw payloads: event times of ISO 8601 timestamps, with or without an offset."""

from __future__ import annotations

from invrecon.transforms.stream.raw import event_time_micros


def test_event_time_parses_offsets_and_local_time():
    assert event_time_micros("2026-11-30T12:00:00-06:00", timezone="UTC") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("2026-11-30T12:00:00", timezone="America/Chicago") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("30/11/2026", timezone="UTC") is None
