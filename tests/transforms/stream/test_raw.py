"""Raw payloads: event times of ISO 8601 timestamps, with or without an offset; RawChunk's coder."""

from __future__ import annotations

import numpy as np
import polars as pl

from invrecon.transforms.stream.raw import RawChunk, RawChunkCoder, RawEvent, event_time_micros


def test_event_time_parses_offsets_and_local_time():
    assert event_time_micros("2026-11-30T12:00:00-06:00", timezone="UTC") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("2026-11-30T12:00:00", timezone="America/Chicago") == event_time_micros("2026-11-30T18:00:00Z", timezone="UTC")
    assert event_time_micros("30/11/2026", timezone="UTC") is None


def test_a_live_message_has_no_replay_clock():
    assert RawEvent("{}", "pubsub://t", "message 1").replay_watermark is None


def test_raw_chunk_coder_round_trips_lists_and_series_and_weighs_the_text():
    coder = RawChunkCoder()
    live = RawChunk(["ab", "é"], "pubsub://t", [1, 2], ["message 1", "message 2"], [None, None], 7)
    assert coder.decode(coder.encode(live)) == live
    replay = RawChunk(pl.Series(["abc", "de"]), "file:///e.jsonl", pl.Series([1, 3]), None, np.array([5, 9]), 1 << 40)
    got = coder.decode(coder.encode(replay))
    assert got.texts.to_list() == ["abc", "de"] and got.numbers.to_list() == [1, 3] and got.replay_watermarks.tolist() == [5, 9]
    assert (got.file, got.locators, got.arrival_base) == ("file:///e.jsonl", None, 1 << 40)
    # the text's size (a list's in characters, a Series' in bytes) plus 16 a payload
    assert coder.estimate_size(live) == 2 + 1 + 2 * 16 and coder.estimate_size(replay) == 5 + 2 * 16
    assert coder.to_type_hint() is RawChunk and not coder.is_deterministic()
