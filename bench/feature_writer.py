"""Benchmark: online feature rows/s of `streamrec.features.online` vs. Feast's own writes, same rows, same redis-server.

Prints one JSON line. The figure is `FeatureLayout.row_commands` + pipeline execute (batches of --batch rows); the
baselines are `FeatureStore.write_to_online_store` and `FeatureStore.push(to=ONLINE)` over DataFrames built
beforehand (their construction is not timed, which favours Feast). As a side figure it also times reading
--read-ids item rows per request with `read_commands` + `decode_rows` vs. `get_online_features`.

    .venv/bin/python bench/feature_writer.py [--rows 2000] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from streamrec.devstack.localstack import LocalStack
from streamrec.features.online import FeatureLayout
from streamrec.features.schema import VIEWS
from streamrec.redis import execute_sync, sync_client

PROJECT = "benchfeatures"
EVENT_TS_MS = 1_704_164_645_678

Rows = dict[str, list[tuple[str, dict[str, Any]]]]  # view -> [(entity id, values)]


def make_rows(n: int, seed: int = 0) -> Rows:
    rnd = random.Random(seed)
    items = [f"item-{i}" for i in range(5000)]
    rows: Rows = {view: [] for view in VIEWS}
    for i in range(n):
        rows["session_features"].append(
            (
                f"s-{i}",
                {
                    "recent_items": rnd.sample(items, rnd.randint(0, 50)),
                    "last_category": f"c{rnd.randint(0, 99)}",
                    "cart_items": rnd.sample(items, rnd.randint(0, 3)),
                    "purchased_items": rnd.sample(items, rnd.randint(0, 1)),
                    "event_count": rnd.randint(0, 200),
                    "click_count": rnd.randint(0, 100),
                    "cart_count": rnd.randint(0, 5),
                    "purchase_count": rnd.randint(0, 2),
                },
            )
        )
        counts = {name: rnd.randint(0, 10_000) for name, kind in VIEWS["item_features"].features if kind == "int64"}
        rows["item_features"].append(
            (
                f"item-{i}",
                {
                    **counts,
                    "trending_score": rnd.random() * 100,
                    "conversion_rate": rnd.random(),
                },
            )
        )
        top = rnd.sample([f"c{c}" for c in range(100)], 5)
        rows["user_features"].append(
            (
                f"u-{i}",
                {
                    "top_categories": top,
                    "top_category_counts": sorted(rnd.sample(range(1, 500), 5), reverse=True),
                    "purchase_history": rnd.sample(items, rnd.randint(0, 50)),
                },
            )
        )
    return rows


def n_rows(rows: Rows) -> int:
    return sum(len(v) for v in rows.values())


def write_fast(client: redis.Redis, rows: Rows, batch: int, prefix: str) -> float:
    layout = FeatureLayout(PROJECT)
    flat = [(view, prefix + e, values) for view, view_rows in rows.items() for e, values in view_rows]
    start = time.perf_counter()
    for lo in range(0, len(flat), batch):
        with client.pipeline(transaction=False) as pipe:
            for view, entity_id, values in flat[lo : lo + batch]:
                for command in layout.row_commands(view, entity_id, values, EVENT_TS_MS):
                    pipe.execute_command(*command)
            pipe.execute()
    return time.perf_counter() - start


def frames(rows: Rows, batch: int, prefix: str) -> list[tuple[str, Any]]:
    import pandas as pd

    out = []
    for view, view_rows in rows.items():
        key = VIEWS[view].join_key
        for lo in range(0, len(view_rows), batch):
            frame = pd.DataFrame([{key: prefix + e, **values} for e, values in view_rows[lo : lo + batch]])
            frame["event_timestamp"] = pd.Timestamp(EVENT_TS_MS, unit="ms", tz="UTC")
            out.append((view, frame))
    return out


def write_feast(write: Callable[[str, Any], None], batches: list[tuple[str, Any]]) -> float:
    start = time.perf_counter()
    for view, frame in batches:
        write(view, frame)
    return time.perf_counter() - start


def read_latency_ms(read: Callable[[list[str]], object], ids: list[str], repeat: int) -> float:
    read(ids)  # warm caches (registry, connections, read plans)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read(ids)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(n: int, batch: int, read_ids: int, repeat: int) -> dict[str, Any]:
    from feast.data_source import PushMode

    from streamrec.features.feast_apply import apply

    rows = make_rows(n)
    with LocalStack() as stack, tempfile.TemporaryDirectory() as state:
        url = stack.start_redis()
        store = apply(PROJECT, url, Path(state)).store
        client = sync_client(url)
        wtos_batches, push_batches = frames(rows, batch, "wtos:"), frames(rows, batch, "push:")
        fast_s = write_fast(client, rows, batch, "fast:")
        wtos_s = write_feast(lambda view, frame: store.write_to_online_store(view, frame), wtos_batches)
        push_s = write_feast(
            lambda view, frame: store.push(VIEWS[view].push_source, frame, to=PushMode.ONLINE), push_batches
        )
        ids = [f"fast:item-{i}" for i in range(min(read_ids, n))]
        layout = FeatureLayout(PROJECT)
        refs = [f"item_features:{name}" for name, _ in VIEWS["item_features"].features]
        fast_read = read_latency_ms(
            lambda e: layout.decode_rows(
                "item_features", execute_sync(client, layout.read_commands("item_features", e))
            ),
            ids,
            repeat,
        )
        feast_read = read_latency_ms(
            lambda e: store.get_online_features(features=refs, entity_rows=[{"item_id": i} for i in e]).to_dict(),
            ids,
            repeat,
        )
    total = n_rows(rows)
    fast, wtos, push = total / fast_s, total / wtos_s, total / push_s
    return {
        "bench": "feature_writer",
        "figure": "online feature rows/s (row_commands + pipeline execute)",
        "value": round(fast),
        "baseline": "Feast FeatureStore.write_to_online_store",
        "baseline_value": round(wtos),
        "ratio": round(fast / wtos, 2),
        "push_rows_per_s": round(push),
        "ratio_vs_push": round(fast / push, 2),
        "rows": total,
        "batch": batch,
        "read_ids": len(ids),
        "read_rows_p50_ms": round(fast_read, 3),
        "get_online_features_p50_ms": round(feast_read, 3),
        "read_ratio": round(feast_read / fast_read, 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "at": time.strftime("%FT%TZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=2000, help="rows per feature view")
    parser.add_argument("--batch", type=int, default=500, help="rows per pipeline / DataFrame")
    parser.add_argument("--read-ids", type=int, default=100, help="item rows read per request")
    parser.add_argument("--repeat", type=int, default=50, help="timed read requests")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rows, args.batch, args.read_ids, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
