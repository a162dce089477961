"""StreamParams: the stream's settings are checked when they are built, naming the field."""

from __future__ import annotations

import pytest

from invrecon.transforms.stream import StreamParams


def test_params_validation_names_the_field():
    with pytest.raises(ValueError, match="`window_minutes` must be > 0"):
        StreamParams(window_minutes=0)
    with pytest.raises(ValueError, match="`dedup_ttl_hours` must cover"):
        StreamParams(window_minutes=60, allowed_lateness_minutes=120, dedup_ttl_hours=1)
