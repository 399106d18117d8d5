"""`streamrec model ...`: list, publish, pull, use (rollback) and sync model versions, locally or remotely."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from streamrec.errors import ArtifactError

DEFAULT_REGISTRY = "models/registry"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `model` and its subcommands to the `streamrec` argument parser; each sets `handler`."""
    model = subparsers.add_parser("model", help="model registry: list, publish, pull, use (rollback), sync")
    kinds = model.add_subparsers(dest="model_command", required=True)

    p = kinds.add_parser("list", help="versions of a registry, CURRENT marked with *")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="local directory or remote URL (s3://, file://)")
    p.set_defaults(handler=_list)

    p = kinds.add_parser("publish", help="upload a local version to a remote registry and make it CURRENT there")
    p.add_argument("--registry", type=Path, default=Path(DEFAULT_REGISTRY), help="local registry holding it")
    p.add_argument("--version", default=None, help="version to publish (default: the local CURRENT)")
    p.add_argument("--remote", required=True, help="remote registry URL, e.g. s3://bucket/prefix")
    p.add_argument("--no-current", action="store_true", help="upload only; leave the remote CURRENT alone")
    p.add_argument(
        "--if-new",
        action="store_true",
        help="move the remote CURRENT only when this call uploaded the version (keeps a rollback)",
    )
    p.set_defaults(handler=_publish)

    p = kinds.add_parser("pull", help="fetch and verify a remote version (default: its CURRENT) into a registry")
    p.add_argument("--remote", required=True)
    p.add_argument("--registry", type=Path, default=Path(DEFAULT_REGISTRY))
    p.add_argument("--version", default=None)
    p.add_argument("--no-current", action="store_true", help="fetch only; leave the local CURRENT alone")
    p.set_defaults(handler=_pull)

    p = kinds.add_parser("use", help="point CURRENT at a version (rollback); scorers follow on their next poll")
    p.add_argument("version")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="local directory or remote URL")
    p.set_defaults(handler=_use)

    p = kinds.add_parser("sync", help="keep a local registry on the remote CURRENT until stopped")
    p.add_argument("--remote", required=True)
    p.add_argument("--registry", type=Path, default=Path(DEFAULT_REGISTRY))
    p.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    p.add_argument("--once", action="store_true", help="one sync, then exit")
    p.set_defaults(handler=_sync)


def _is_remote(location: str) -> bool:
    return "://" in location


def _list(args: argparse.Namespace) -> int:
    from streamrec import registry_sync
    from streamrec.artifact import list_versions

    if _is_remote(args.registry):
        versions, current = registry_sync.remote_versions(args.registry), registry_sync.remote_current(args.registry)
    else:
        versions, current = list_versions(Path(args.registry)), registry_sync.local_current(Path(args.registry))
    for version in versions:
        print(f"{'*' if version == current else ' '} {version}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from streamrec import registry_sync
    from streamrec.artifact import current_version

    version = args.version or current_version(args.registry)
    result = registry_sync.publish(args.registry / version, args.remote, make_current=False)
    move = not args.no_current and (
        result.uploaded or not args.if_new or registry_sync.remote_current(args.remote) is None
    )
    if move:
        registry_sync.set_remote_current(args.remote, result.version)
    print(json.dumps({"version": result.version, "uploaded": result.uploaded, "current": move}))
    return 0


def _pull(args: argparse.Namespace) -> int:
    from streamrec import registry_sync
    from streamrec.artifact import set_current

    version = args.version or registry_sync.remote_current(args.remote)
    if version is None:
        raise ArtifactError(f"{args.remote} has no CURRENT version")
    print(registry_sync.pull(args.remote, args.registry, version))
    if not args.no_current:
        set_current(args.registry, version)
    return 0


def _use(args: argparse.Namespace) -> int:
    from streamrec import registry_sync
    from streamrec.artifact import set_current

    if _is_remote(args.registry):
        registry_sync.set_remote_current(args.registry, args.version)
    else:
        set_current(Path(args.registry), args.version)
    print(f"{args.registry}: CURRENT -> {args.version}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from streamrec import registry_sync

    if args.once:
        print(json.dumps(dataclasses.asdict(registry_sync.sync_once(args.remote, args.registry))))
        return 0
    from streamrec.signals import stop_on_signals

    stop = stop_on_signals()
    registry_sync.sync_forever(args.remote, args.registry, args.interval, stop)
    return 0
