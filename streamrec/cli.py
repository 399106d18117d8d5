"""The `streamrec` console script: one subcommand per job, each a thin call into its package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamrec.commands import run_handler


def _worker(args: argparse.Namespace) -> int:
    from streamrec.stream.app import run_worker
    from streamrec.stream.config import StreamSettings

    return run_worker(StreamSettings())


def _serve(args: argparse.Namespace) -> int:
    from streamrec.serving.config import ServingSettings

    given = {"port": args.port, "registry": args.registry, "processes": args.processes}
    settings = ServingSettings(**{k: v for k, v in given.items() if v is not None})
    if settings.processes > 1:
        from streamrec.serving.processes import run_group

        return run_group(settings)
    from streamrec.serving.server import run_server

    return run_server(settings)


def _up(args: argparse.Namespace) -> int:
    from streamrec.up import run_detached, run_foreground, up_options

    options = up_options(args.state_dir, args.workers, args.scorers, args.fresh, args.redis_cluster)
    if args.detach:
        return run_detached(args.state_dir, options)
    return run_foreground(args.state_dir, options)


def _down(args: argparse.Namespace) -> int:
    from streamrec.up import stop_detached

    return stop_detached(args.state_dir)


def _demo(args: argparse.Namespace) -> int:
    from streamrec.demo import run_demo

    return run_demo(sessions=args.sessions, epochs=args.epochs)


def _health(args: argparse.Namespace) -> int:
    from streamrec.channels import scorer_addresses
    from streamrec.devstack.stack import scorer_ready

    serving = {address: scorer_ready(address) for address in scorer_addresses(args.address)}
    for address, ok in serving.items():
        print(f"{address}: {'SERVING' if ok else 'NOT SERVING'}")
    return 0 if serving and all(serving.values()) else 1


def _catalog_publish(args: argparse.Namespace) -> int:
    from streamrec.devstack.cli_args import Endpoint, kafka_logger, require_reachable, stack_addresses
    from streamrec.stream.catalog import CatalogLimits
    from streamrec.stream.catalog_producer import parse_mapping, publish, read_export
    from streamrec.stream.config import StreamSettings

    mapping = parse_mapping(args.map)
    frame = read_export(args.file)
    settings = StreamSettings()
    stack = stack_addresses(args.state_dir, addresses_given=args.bootstrap is not None)
    bootstrap = args.bootstrap or (stack.kafka if stack else settings.core.kafka_bootstrap)
    require_reachable(Endpoint.broker(bootstrap))
    topic = args.topic or settings.catalog_topic
    limits = CatalogLimits(settings.catalog_max_record_bytes, settings.max_future_skew_ms)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = publish(
        frame,
        mapping,
        bootstrap,
        topic,
        limits,
        partitions=settings.catalog_partitions,
        replication=settings.replication_factor,
        progress=progress,
        logger=kafka_logger(),
    )
    print(json.dumps({"file": str(args.file), "topic": topic, **result.summary()}))
    return 0 if result.ok else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec", description="real-time streaming recommendations")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="start the local stack, train, replay, show recommendations refresh, stop")
    p.add_argument("--sessions", type=int, default=2000, help="synthetic sessions to replay")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's)")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("up", help="run the whole local stack (broker, Redis, scorer, worker)")
    p.add_argument("--detach", action="store_true", help="start in the background and return")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".streamrec/stack"),
        help="logs, model registry, broker and Redis data (the next up resumes them), stack.json",
    )
    p.add_argument("--workers", type=_positive, default=1, help="stream worker processes (default 1)")
    p.add_argument("--scorers", type=_positive, default=1, help="scorer processes behind one address list (default 1)")
    p.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="N",
        help="a Redis Cluster of N primaries, each with a replica, instead of one Redis (default: one Redis)",
    )
    p.add_argument("--fresh", action="store_true", help="remove the state dir's broker and Redis data first")
    p.set_defaults(handler=_up)

    p = sub.add_parser("down", help="stop a stack started with `up --detach`")
    p.add_argument("--state-dir", type=Path, default=Path(".streamrec/stack"))
    p.set_defaults(handler=_down)

    p = sub.add_parser("worker", help="run a stream worker (settings from STREAMREC_* environment)")
    p.set_defaults(handler=_worker)

    p = sub.add_parser("serve", help="run the gRPC scorer (settings from STREAMREC_* environment)")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--registry", type=Path, default=None)
    p.add_argument(
        "--processes", type=int, default=None, help="scorer processes on the one port, for more cores (default 1)"
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("catalog", help="the product catalogue: publish an export to the catalogue topic")
    catalog = p.add_subparsers(dest="catalog_command", required=True)
    p = catalog.add_parser(
        "publish",
        help="produce a CSV or Parquet export to the catalogue topic, one Product per row keyed by product id; "
        "prints one JSON line (rows, produced, refused by reason); exit 1 when any row was refused or not delivered",
    )
    p.add_argument("file", type=Path, help="the export: .csv (or .tsv) with a header row, or .parquet")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="the column holding a Product field (product_id, title, brand, category, price, available, updated_ms); "
        "repeatable; by default each field's own name. No available column: available; no updated_ms: now",
    )
    from streamrec.devstack.cli_args import add_state_dir_argument

    add_state_dir_argument(p)
    p.add_argument(
        "--bootstrap", default=None, help="Kafka bootstrap (default: --state-dir's, else STREAMREC_KAFKA_BOOTSTRAP)"
    )
    p.add_argument("--topic", default=None, help="default STREAMREC_STREAM_CATALOG_TOPIC (streamrec.catalog)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(handler=_catalog_publish)

    p = sub.add_parser("health", help="exit 0 when the scorer at --address reports SERVING (grpc.health.v1)")
    p.add_argument("--address", default="127.0.0.1:50051", help="host:port, or several comma-separated: each is asked")
    p.set_defaults(handler=_health)

    from streamrec.bench.cli import register as register_bench
    from streamrec.features.cli import register as register_features
    from streamrec.loadtest.cli import register as register_loadtest
    from streamrec.model_cli import register as register_model
    from streamrec.observe.cli import register as register_observe
    from streamrec.training.cli import register as register_training

    register_training(sub)
    register_features(sub)
    register_bench(sub)
    register_loadtest(sub)
    register_observe(sub)
    register_model(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from streamrec.logs import setup

    setup(args.verbose)
    return run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
