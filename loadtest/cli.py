"""Arguments and handler of `streamrec replay`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

from streamrec.config import CoreSettings
from streamrec.errors import DataError
from streamrec.events import CanonicalEvent


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--synthetic", action="store_true", help="the seeded synthetic generator (default)")
    source.add_argument("--file", type=Path, help="canonical events as Parquet")
    p.add_argument("--sessions", type=int, default=1000, help="synthetic sessions")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=1000.0, help="events/s; 0 = as fast as possible")
    p.add_argument("--limit", type=int, default=None, help="stop after this many events")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: STREAMREC_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", default=None)
    p.add_argument("--progress", action="store_true")


def load_events(args: argparse.Namespace) -> Iterable[CanonicalEvent]:
    if args.file:
        return read_parquet_events(args.file)
    from training.synthetic import SyntheticConfig, generate_time_ordered

    return generate_time_ordered(SyntheticConfig(n_sessions=args.sessions, seed=args.seed))


def read_parquet_events(path: Path) -> Iterable[CanonicalEvent]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path} does not exist")
    frame = pd.read_parquet(path).sort_values(["ts_ms", "event_id"], kind="stable")
    for row in frame.itertuples(index=False):
        price = getattr(row, "price", None)
        yield CanonicalEvent(
            event_id=str(row.event_id), type=str(row.type), session_id=str(row.session_id),
            user_id=str(row.user_id or ""), item_id=str(row.item_id), ts_ms=int(row.ts_ms),
            category_id=str(getattr(row, "category_id", "") or ""),
            price=None if price is None or price != price else float(price),
            quantity=int(getattr(row, "quantity", 1) or 1),
        )  # fmt: skip


def run_replay(args: argparse.Namespace) -> int:
    from loadtest.producer import replay

    core = CoreSettings()
    result = replay(
        load_events(args),
        args.bootstrap or core.kafka_bootstrap,
        args.topic or core.events_topic,
        rate=args.rate or None,
        limit=args.limit,
        progress=args.progress,
    )
    summary = {"sent": result.sent, "failed": result.failed, "seconds": round(result.seconds, 3),
               "events_per_s": round(result.rate, 1), "checksum": result.checksum}  # fmt: skip
    print(json.dumps(summary))
    return 0 if result.failed == 0 else 1
