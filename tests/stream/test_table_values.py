"""The session table holds SessionState JSON; eviction reads a value's partition and last update from its head."""

from __future__ import annotations

import orjson

from streamrec.features.session_store import SessionState, partition_and_update


def test_partition_and_update_are_read_from_the_head_of_the_json() -> None:
    state = SessionState(offset=41, partition=3, updated_ms=1_700_000_000_123, items=["i1"], seen=["e@3:41"])
    assert partition_and_update(state.to_json_bytes()) == (3, 1_700_000_000_123)


def test_a_value_in_another_field_order_is_decoded_instead() -> None:
    older = orjson.dumps({"offset": 7, "items": ["i1"], "updated_ms": 99, "partition": 2})
    assert partition_and_update(older) == (2, 99)
    assert partition_and_update(None) == (0, 0)
