"""The `replay` and `loadtest run|compare` subcommands of `streamrec`; heavy modules load inside the handlers.

`register(subparsers)` adds both. `add_replay_arguments` and `run_replay` stay importable on their own for
callers that wire `replay` by hand. Data and settings problems, and a stack that does not answer, end a command
with one line on stderr and exit code 2, never a traceback; the replay's result is one JSON line on stdout.
`replay` and `loadtest run` find a running stack through `--state-dir` (streamrec.devstack.cli_args).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streamrec.commands import run_package_cli
from streamrec.devstack.cli_args import add_state_dir_argument
from streamrec.errors import ConfigError, DataError, StackError

Handler = Callable[[argparse.Namespace], int]
DEFAULT_RATE = 1000.0  # events/s when neither --rate nor --speedup is given
REPORTS_DIR = Path("reports/loadtest")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `replay` and `loadtest` (with `run` and `compare`) to the `streamrec` parser; each sets `handler`."""
    replay = subparsers.add_parser("replay", help="replay a clickstream into Kafka, keyed by session, at a pace")
    add_replay_arguments(replay)
    replay.set_defaults(handler=run_replay)

    event = subparsers.add_parser(
        "event",
        help="write one event, as the events topic's protobuf bytes, to stdout; for other clients: "
        "`streamrec event ... > ev.bin; kcat -P -b HOST:PORT -t streamrec.events -k SESSION ev.bin`",
    )
    event.add_argument("--session", required=True, help="session id (also the record key to give the producer)")
    event.add_argument("--item", required=True, help="item id")
    event.add_argument("--type", default="click", help="view, click, add_to_cart or purchase (default click)")
    event.add_argument("--user", default="", help="user id (default anonymous)")
    event.add_argument("--category", default="", help="category id")
    event.add_argument("--event-id", default="", help="unique id (default a fresh UUID)")
    event.set_defaults(handler=_guarded(_event))

    loadtest = subparsers.add_parser("loadtest", help="scenario load tests: replay + storefront traffic + freshness")
    kinds = loadtest.add_subparsers(dest="loadtest", required=True)
    run = kinds.add_parser("run", help="run a scenario file; writes report.json, report.md and plots")
    run.add_argument("scenario", type=Path, help="scenario YAML (see scenarios/)")
    run.add_argument("--out", type=Path, default=None, help="report folder (default reports/loadtest/NAME-TIME)")
    run.add_argument("--registry", type=Path, default=None, help="model registry for a local stack (overrides)")
    add_state_dir_argument(
        run,
        help="run against the stack `streamrec up` started there (its stack.json) instead of the scenario's target",
        deprecated_alias="--stack-dir",
    )
    run.add_argument("--duration", type=float, default=None, help="seconds (overrides duration_s)")
    run.add_argument("--rate", type=float, default=None, help="Recommend calls/s (overrides recommend.rate)")
    run.add_argument("--processes", type=int, default=None, help="load-generator processes (recommend.processes)")
    run.add_argument("--events-rate", type=float, default=None, help="replayed events/s (overrides replay pace)")
    run.add_argument("--progress", action="store_true", help="progress bar for the replay")
    run.set_defaults(handler=_guarded(_run))
    compare = kinds.add_parser("compare", help="two reports side by side")
    compare.add_argument("a", type=Path, help="report folder or report.json")
    compare.add_argument("b", type=Path, help="report folder or report.json")
    compare.set_defaults(handler=_guarded(_compare))


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        default=None,
        help="yoochoose-100k-test, yoochoose-100k, diginetica-sample, "
        "taobao, synthetic, or the path of any file the loaders read (default synthetic)",
    )
    source.add_argument("--synthetic", action="store_true", help="the seeded synthetic generator")
    source.add_argument("--file", type=Path, help="a data file (canonical Parquet or a format the loaders read)")
    p.add_argument("--data-dir", type=Path, default=None, help="real data directory (default ../shared/data)")
    p.add_argument("--sessions", type=int, default=1000, help="synthetic sessions")
    p.add_argument("--seed", type=int, default=7)
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help=f"events/s (default {DEFAULT_RATE:g}); 0 = no pacing")
    pace.add_argument("--speedup", type=float, default=None, help="original pace times this factor")
    p.add_argument("--limit", type=int, default=None, help="stop after this many events")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--repeat", action="store_true", help="start over (new session ids) until --limit/--duration")
    p.add_argument("--tag", default="", help="suffix for session and event ids (replay the same data again)")
    p.add_argument("--keep-timestamps", action="store_true", help="send original event times, not the send time")
    add_state_dir_argument(p)
    p.add_argument(
        "--bootstrap", default=None, help="Kafka bootstrap (default: --state-dir's, else STREAMREC_KAFKA_BOOTSTRAP)"
    )
    p.add_argument("--topic", default=None)
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ConfigError, DataError, StackError) as exc:
            print(f"streamrec {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def _event(args: argparse.Namespace) -> int:
    import time
    import uuid

    from streamrec.events import CanonicalEvent

    event = CanonicalEvent(
        event_id=args.event_id or uuid.uuid4().hex,
        type=args.type,
        session_id=args.session,
        user_id=args.user,
        item_id=args.item,
        ts_ms=int(time.time() * 1000),
        category_id=args.category,
    )
    sys.stdout.buffer.write(event.to_bytes())
    sys.stdout.buffer.flush()
    return 0


@_guarded
def run_replay(args: argparse.Namespace) -> int:
    from streamrec.config import CoreSettings
    from streamrec.devstack.cli_args import Endpoint, kafka_logger, require_reachable, stack_addresses
    from streamrec.loadtest.replayer import Replayer
    from streamrec.loadtest.schedule import Pace, plan
    from streamrec.loadtest.sources import DataSpec, load_events
    from streamrec.stream.producer import EventProducer

    source = "synthetic" if args.synthetic or not (args.data or args.file) else str(args.data or args.file)
    events = load_events(DataSpec(source, args.data_dir, args.sessions, args.seed))
    rate = DEFAULT_RATE if args.rate is None and args.speedup is None else (args.rate or None)
    pace = Pace(rate, args.speedup)
    planned = plan(events, pace, limit=args.limit, duration_s=args.duration, repeat=args.repeat, tag=args.tag)
    core = CoreSettings()
    stack = stack_addresses(args.state_dir, addresses_given=args.bootstrap is not None)
    bootstrap = args.bootstrap or (stack.kafka if stack else core.kafka_bootstrap)
    require_reachable(Endpoint.broker(bootstrap))
    producer = EventProducer(bootstrap, args.topic or core.events_topic, logger=kafka_logger())
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    total = args.limit if args.repeat else min(args.limit or len(events), len(events))  # for the progress bar
    stats = Replayer(producer, args.keep_timestamps, progress=progress).run(
        planned, total=total, stop_after_s=args.duration
    )
    print(json.dumps({"data": source, "pace": pace.describe(), **stats.summary(), "errors": stats.errors}))
    return 0 if stats.failed == 0 and not stats.interrupted else 1


def _run(args: argparse.Namespace) -> int:
    from streamrec.loadtest.report import build_report, summary_lines, write_report
    from streamrec.loadtest.runner import run_scenario
    from streamrec.loadtest.scenario import load_scenario, with_overrides

    scenario = with_overrides(load_scenario(args.scenario), _overrides(args))
    out = args.out or REPORTS_DIR / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    measured = run_scenario(scenario, registry=args.registry, progress=args.progress)
    report = build_report(scenario, measured, command=_command_line(args, out))
    paths = write_report(report, out)
    for line in summary_lines(report):
        print(line)
    print(f"report: {paths[1]}")
    return 0


def _command_line(args: argparse.Namespace, out: Path) -> str:
    """The command that reproduces this run (rebuilt from the arguments: sys.argv may be a test runner's)."""
    words = ["streamrec", "loadtest", "run", str(args.scenario), "--out", str(out)]
    for flag in ("registry", "state_dir", "duration", "rate", "processes", "events_rate"):
        value = getattr(args, flag)
        if value is not None:
            words += [f"--{flag.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    changes: dict[str, object] = {}
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if args.rate is not None:
        changes["recommend.rate"] = args.rate
    if args.processes is not None:
        changes["recommend.processes"] = args.processes
    if args.events_rate is not None:
        changes.update({"replay.rate": args.events_rate, "replay.speedup": None})
    if args.state_dir is not None:
        changes.update({"target.kind": "given", "target.stack_dir": args.state_dir})
    return changes


def _compare(args: argparse.Namespace) -> int:
    from streamrec.loadtest.compare import render
    from streamrec.loadtest.report import read_report

    for path in (args.a, args.b):
        if not (path / "report.json" if path.is_dir() else path).is_file():
            raise ConfigError(f"{path} is not a report.json nor a folder holding one")
    print(render(read_report(args.a), read_report(args.b), str(args.a), str(args.b)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m streamrec.loadtest.cli ...`: the same subcommands without the rest of `streamrec`."""
    return run_package_cli("python -m streamrec.loadtest.cli", register, argv)


if __name__ == "__main__":
    raise SystemExit(main())
