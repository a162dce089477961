"""StreamParams and CrosswalkFiles: the stream's settings, checked when built and naming the field; keyword-only."""

from __future__ import annotations

import pytest

from invrecon.transforms.stream import (
    CanonicalizeEvents,
    CrosswalkFiles,
    DropRepeatedEvents,
    GateLateEvents,
    RunningPosition,
    StockEvents,
    StreamParams,
    WindowPositionChanges,
    WriteParquetFiles,
)
from tests.transforms.stream.helpers import PARAMS, XW


def test_params_validation_names_the_field():
    with pytest.raises(ValueError, match="`window_minutes` must be > 0"):
        StreamParams(window_minutes=0)
    with pytest.raises(ValueError, match="`dedup_ttl_hours` must cover"):
        StreamParams(window_minutes=60, allowed_lateness_minutes=120, dedup_ttl_hours=1)


def test_params_in_seconds():
    assert (PARAMS.window_seconds, PARAMS.lateness_seconds, PARAMS.ttl_seconds) == (900, 600, 7200)


@pytest.mark.parametrize("make", [
    lambda: StreamParams(15),
    lambda: CrosswalkFiles("sku.csv", "location.csv"),
    lambda: CanonicalizeEvents(PARAMS, None, XW),
    lambda: DropRepeatedEvents(PARAMS),
    lambda: GateLateEvents(PARAMS),
    lambda: StockEvents(PARAMS, None, XW),
    lambda: RunningPosition(PARAMS, "items.csv", XW),
    lambda: WindowPositionChanges(PARAMS),
    lambda: WriteParquetFiles("out", "quarantine", None, "event_date", "run"),
], ids=["StreamParams", "CrosswalkFiles", "CanonicalizeEvents", "DropRepeatedEvents", "GateLateEvents", "StockEvents",
        "RunningPosition", "WindowPositionChanges", "WriteParquetFiles"])
def test_settings_and_transforms_take_keywords_only(make):
    with pytest.raises(TypeError, match="positional"):
        make()


def test_crosswalk_files_load_both_crosswalks():
    crosswalks = XW.load()
    assert crosswalks.location_types().filter(location="S0001")["location_type"].to_list() == ["store"]
