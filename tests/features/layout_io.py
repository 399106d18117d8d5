"""FeatureLayout's commands run through a redis-py client, as the tests' synchronous code needs them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from streamrec.features.online import FeatureLayout
from streamrec.redis import execute_sync


def add_row(layout: FeatureLayout, pipe: Any, view: str, entity_id: str, values: dict[str, Any], ts_ms: int) -> None:
    """Queue one row's commands on a redis-py pipeline."""
    for command in layout.row_commands(view, entity_id, values, ts_ms):
        pipe.execute_command(*command)


def read_rows(
    layout: FeatureLayout,
    client: redis.Redis,
    view: str,
    entity_ids: Sequence[str],
    features: Sequence[str] | None = None,
    with_ts: bool = False,
) -> list[dict[str, Any] | None]:
    replies = execute_sync(client, layout.read_commands(view, entity_ids, features))
    return layout.decode_rows(view, replies, features, with_ts)
