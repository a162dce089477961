"""The constants `schemas/` is the one home of, as the transforms read them."""

from __future__ import annotations

from invrecon import schemas
from invrecon.transforms.readers import events


def test_every_event_type_has_one_sign_and_only_those_are_known():
    """`schemas.EVENT_TYPES` is the list the readers check (`unknown_event_type`); each type moves
    on_hand (`EVENT_SIGN`) or reserved (`RESERVED_SIGN`), never both, never neither."""
    assert len(set(schemas.EVENT_TYPES)) == len(schemas.EVENT_TYPES)
    assert set(schemas.EVENT_TYPES) == set(events.EVENT_SIGN) | set(events.RESERVED_SIGN)
    assert not set(events.EVENT_SIGN) & set(events.RESERVED_SIGN)
    assert events.EVENT_TYPES is schemas.EVENT_TYPES


def test_the_streams_output_schema_lives_in_schemas():
    from invrecon.transforms.stream import POSITION_CHANGES, STREAM_TABLES

    assert POSITION_CHANGES is schemas.POSITION_CHANGES
    assert STREAM_TABLES["position_changes"] == (schemas.POSITION_CHANGES, "window_date")
