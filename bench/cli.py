"""`streamrec bench ingest|freshness|serve|scale|search`: run one benchmark, print its JSON line (--json) or a table."""

from __future__ import annotations

import argparse
from pathlib import Path

GUARANTEES = ("at_least_once", "exactly_once")  # Faust's processing_guarantee (StreamSettings)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = subparsers.add_parser("bench", help="benchmarks: one JSON line each, baseline measured in the same run")
    kinds = bench.add_subparsers(dest="bench", required=True)
    p = kinds.add_parser("ingest", help="worker events/s vs a do-nothing Faust agent on the same topic")
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, help="the do-nothing agent and ours alternate this many times (default 3)")
    p.add_argument("--guarantee", choices=GUARANTEES, default=GUARANTEES[0], help="our worker's processing guarantee")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_ingest)
    p = kinds.add_parser("freshness", help="event produced -> refreshed list readable, at a fixed rate")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--guarantee", choices=GUARANTEES, default=GUARANTEES[0], help="the worker's processing guarantee")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_freshness)
    p = kinds.add_parser("serve", help="Recommend latency and throughput vs a bare echo server and a naive scorer")
    p.add_argument("--registry", type=Path, default=None, help="model registry (default: the synthetic bench model)")
    p.add_argument("--providers", choices=["auto", "cpu", "cuda", "tensorrt"], default="auto")
    p.add_argument("--catalogue-items", type=int, default=0, help="random-weight model over N items (latency only)")
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=2_000, help="sequential calls for the 1-client figures")
    p.add_argument("--level-seconds", type=float, default=2.0, help="seconds per offered-load level")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_serve)
    p = kinds.add_parser("search", help="Search latency, throughput and catalogue freshness beside Recommend and echo")
    p.add_argument("--queries", type=int, default=300, help="distinct queries for the 1-client figures")
    p.add_argument("--freshness-samples", type=int, default=50, help="products produced and searched for")
    p.add_argument("--labels", type=Path, default=None, help="graded labels (default: the Home Depot file if present)")
    p.add_argument("--synthetic", action="store_true", help="the synthetic catalogue even where real data exist")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_search)
    p = kinds.add_parser("scale", help="1->2 workers, 1->2 scorer processes, 1->3 Redis primaries: measured steps")
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--load-seconds", type=float, default=3.0, help="seconds of closed-loop Recommend per level")
    p.add_argument(
        "--levels", type=_levels, default=(2, 4, 8, 16), help="concurrent Recommend callers of each closed loop: 2,4,8"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_scale)


def _ingest(args: argparse.Namespace) -> int:
    from streamrec.bench.common import emit
    from streamrec.bench.ingest import ROUNDS, run_ingest

    emit(run_ingest(args.events, ROUNDS if args.rounds is None else args.rounds, args.guarantee), args.json)
    return 0


def _freshness(args: argparse.Namespace) -> int:
    from streamrec.bench.common import emit
    from streamrec.bench.freshness import run_freshness

    emit(run_freshness(args.rate, args.seconds, guarantee=args.guarantee), args.json)
    return 0


def _search(args: argparse.Namespace) -> int:
    from streamrec.bench.common import emit
    from streamrec.bench.search import HOMEDEPOT, run_search

    labels = None if args.synthetic else (args.labels or HOMEDEPOT)
    emit(run_search(args.queries, args.freshness_samples, labels), args.json)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from streamrec.bench.common import emit
    from streamrec.bench.serve import run_serve

    figures = run_serve(
        args.registry,
        providers=args.providers,
        catalogue_items=args.catalogue_items,
        sessions=args.sessions,
        requests=args.requests,
        level_seconds=args.level_seconds,
    )
    emit(figures, args.json)
    return 0


def _scale(args: argparse.Namespace) -> int:
    from streamrec.bench.common import emit
    from streamrec.bench.scale import run_scale

    emit(run_scale(args.events, args.load_seconds, args.levels), args.json)
    return 0


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(n) for n in text.split(","))
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"levels are positive whole numbers separated by commas, not {text!r}")
    return levels
