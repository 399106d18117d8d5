"""`streamrec status` and `streamrec web`: argument parsing and the thin calls into observe's modules."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from streamrec.commands import run_package_cli
from streamrec.devstack.cli_args import Endpoint, add_state_dir_argument, cannot_reach, chosen_state_dir, refusals
from streamrec.observe.config import ObserveSettings, Targets, read_stack_file, redact, targets_from_environment


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `status` and `web` to the `streamrec` console script's subcommands."""
    p = sub.add_parser("status", help="health of every part of a running stack; exit 1 when something is down")
    _add_target_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument("--max-lag", type=int, default=None, help="exit 2 when the worker group's total lag exceeds it")
    p.add_argument("--timeout", type=float, default=None, help="seconds each check may take (default 3)")
    p.set_defaults(handler=run_status)

    p = sub.add_parser("web", help="serve the live page and demo storefront of a running stack")
    _add_target_arguments(p)
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8088; 0 picks a free one)")
    p.set_defaults(handler=run_web_command)


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    add_state_dir_argument(p)
    p.add_argument("--kafka", default=None, help="bootstrap host:port (default STREAMREC_KAFKA_BOOTSTRAP)")
    p.add_argument("--redis", default=None, help="redis:// URL (default STREAMREC_REDIS_URL)")
    p.add_argument("--grpc", default=None, help="scorer host:port (default STREAMREC_SCORER_ADDRESS)")
    p.add_argument("--project", default=None, help="key namespace and group prefix (default STREAMREC_PROJECT)")
    p.add_argument(
        "--worker-metrics",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a worker's Prometheus endpoint (repeat for several)",
    )
    p.add_argument("--scorer-metrics", action="append", default=[], metavar="HOST:PORT")


def resolve_targets(args: argparse.Namespace) -> Targets:
    """The named (or default) stack.json, else the environment; explicit flags win over either, one by one."""
    given = {
        "kafka": args.kafka,
        "redis": args.redis,
        "grpc": args.grpc,
        "project": args.project,
        "worker_metrics": tuple(args.worker_metrics),
        "scorer_metrics": tuple(args.scorer_metrics),
    }
    state_dir = chosen_state_dir(args.state_dir, addresses_given=any([args.kafka, args.redis, args.grpc]))
    if state_dir is None:
        return targets_from_environment(**given)
    return dataclasses.replace(read_stack_file(state_dir), **{k: v for k, v in given.items() if v})


def require_some_answer(targets: Targets) -> None:
    """A StackError when neither the broker, Redis nor any scorer accepts a connection: no stack is there to
    report on. When some part answers, the status table says what is down."""
    endpoints = [Endpoint.broker(targets.kafka), Endpoint.redis(targets.redis), Endpoint.scorer(targets.grpc)]
    refused = refusals(endpoints)
    if len(refused) == len(endpoints):
        raise cannot_reach(refused)


def run_status(args: argparse.Namespace) -> int:
    from streamrec.observe.checks import collect
    from streamrec.observe.report import exit_code, render_table, to_json

    targets = resolve_targets(args)
    if not args.json:  # a script reading --json gets its document (ok: false) whatever is down
        require_some_answer(targets)
    status = collect(targets, args.timeout or ObserveSettings().check_timeout_s)
    if args.json:
        print(json.dumps(to_json(status), indent=2, default=str))
    else:
        print(
            f"stack: kafka {targets.kafka}  redis {redact(targets.redis)}  scorer {targets.grpc}  "
            f"project {targets.project}"
        )
        print(render_table(status))
    return exit_code(status, args.max_lag)


def run_web_command(args: argparse.Namespace) -> int:
    from streamrec.observe.web import run_web

    settings = ObserveSettings()
    host = args.host or settings.web_host
    port = settings.web_port if args.port is None else args.port
    return run_web(resolve_targets(args), host, port)


def main(argv: list[str] | None = None) -> int:
    """`python -m streamrec.observe.cli status ...`: the same commands without the rest of the console script."""
    return run_package_cli("python -m streamrec.observe.cli", register, argv)


if __name__ == "__main__":
    sys.exit(main())
