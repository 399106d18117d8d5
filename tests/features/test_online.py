"""FeatureLayout's commands against a real redis-server: round trips, partial rows, expiry, the engines' client."""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

import pytest
import redis

from streamrec.errors import ConfigError
from streamrec.features.online import TS_KEY, FeatureLayout
from streamrec.features.schema import VIEWS
from streamrec.redis import FastRedis
from tests.features.layout_io import add_row, read_rows

pytestmark = pytest.mark.integration


Rows = dict[str, dict[str, dict[str, Any]]]
EVENT_TS_MS = 1_704_164_645_678


def write_all(client: redis.Redis, layout: FeatureLayout, rows: Rows, ts_ms: int = EVENT_TS_MS) -> None:
    with client.pipeline(transaction=False) as pipe:
        for view, view_rows in rows.items():
            for entity_id, values in view_rows.items():
                add_row(layout, pipe, view, entity_id, values, ts_ms)
        pipe.execute()


@pytest.mark.parametrize("view", list(VIEWS))
def test_round_trip_of_every_view(client: redis.Redis, project: str, view: str, rows: Rows) -> None:
    layout = FeatureLayout(project)
    write_all(client, layout, rows)
    ids = [*rows[view], "never-written"]
    read = read_rows(layout, client, view, ids)
    assert read == [*rows[view].values(), None]
    first = read[0]
    assert first is not None
    assert {k: type(v) for k, v in first.items()} == {k: type(v) for k, v in rows[view][ids[0]].items()}


def test_selected_features_and_timestamp(client: redis.Redis, project: str, rows: Rows) -> None:
    layout = FeatureLayout(project)
    write_all(client, layout, rows)
    read = read_rows(layout, client, "item_features", ["item-1"], ["trending_score", "views_1h"], with_ts=True)
    assert read == [{"trending_score": 12.625, "views_1h": 5, TS_KEY: EVENT_TS_MS}]


def test_partial_row_keeps_other_features_and_none_clears(client: redis.Redis, project: str, rows: Rows) -> None:
    layout = FeatureLayout(project)
    write_all(client, layout, rows)
    with client.pipeline(transaction=False) as pipe:
        add_row(layout, pipe, "session_features", "s-1", {"event_count": 4, "last_category": None}, EVENT_TS_MS + 1)
        pipe.execute()
    [row] = read_rows(layout, client, "session_features", ["s-1"], with_ts=True)
    assert row is not None
    assert row == {**rows["session_features"]["s-1"], "event_count": 4, "last_category": None, TS_KEY: EVENT_TS_MS + 1}


def test_nan_reads_back_as_none(client: redis.Redis, project: str) -> None:
    layout = FeatureLayout(project)
    with client.pipeline(transaction=False) as pipe:
        add_row(layout, pipe, "item_features", "nan", {"trending_score": math.nan}, EVENT_TS_MS)
        pipe.execute()
    [row] = read_rows(layout, client, "item_features", ["nan"], ["trending_score"])
    assert row == {"trending_score": None}


@pytest.mark.parametrize("view", list(VIEWS))
def test_keys_expire_after_the_view_ttl(client: redis.Redis, project: str, view: str, rows: Rows) -> None:
    layout = FeatureLayout(project)
    write_all(client, layout, rows)
    for entity_id in rows[view]:
        ttl = client.ttl(layout.redis_key(view, entity_id))
        assert VIEWS[view].ttl_s - 5 <= ttl <= VIEWS[view].ttl_s


def test_projects_do_not_collide(client: redis.Redis, project: str, rows: Rows) -> None:
    write_all(client, FeatureLayout(project), rows)
    assert read_rows(FeatureLayout(project + "x"), client, "user_features", list(rows["user_features"])) == [None] * 2


def test_the_engines_client_writes_and_reads(redis_url: str, project: str, rows: Rows) -> None:
    async def main() -> list[dict[str, Any] | None]:
        layout = FeatureLayout(project)
        client = FastRedis(redis_url)
        try:
            commands = [
                command
                for entity_id, values in rows["user_features"].items()
                for command in layout.row_commands("user_features", entity_id, values, EVENT_TS_MS)
            ]
            await client.execute(commands)
            return await layout.read_rows(client, "user_features", list(rows["user_features"]))
        finally:
            await client.aclose()

    assert asyncio.run(main()) == list(rows["user_features"].values())


def test_unknown_views_and_features_are_config_errors(client: redis.Redis, project: str) -> None:
    layout = FeatureLayout(project)
    with pytest.raises(ConfigError, match="unknown feature view"):
        layout.row_commands("nope", "x", {}, 0)
    with pytest.raises(ConfigError, match="no feature"):
        layout.row_commands("item_features", "x", {"views_7d": 1}, 0)
    with pytest.raises(ConfigError, match="no features"):
        read_rows(layout, client, "item_features", ["x"], ["views_7d"])


def test_online_path_never_imports_feast() -> None:
    # Run in a fresh interpreter: this test process may already have imported Feast for other tests.
    import subprocess

    code = "import sys, features.online, features.cli; sys.exit(any(m.split('.')[0] == 'feast' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
