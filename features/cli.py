"""`streamrec features ...`: the Feast repository's commands (`apply`, `yaml`); Feast is imported only when run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _settings(args: argparse.Namespace) -> tuple[str, str, Path, int | None]:
    from streamrec.features.config import FeaturesSettings

    settings = FeaturesSettings()
    project = args.project or settings.core.project
    redis_url = args.redis_url or settings.core.redis_url.get_secret_value()
    state_dir = args.state_dir or settings.state_dir
    return project, redis_url, state_dir, settings.feast_key_ttl_s


def _apply(args: argparse.Namespace) -> int:
    from streamrec.features.feast_apply import apply

    project, redis_url, state_dir, key_ttl = _settings(args)
    result = apply(project, redis_url, state_dir, key_ttl)
    summary = {"project": project, "state_dir": str(state_dir), "applied": result.applied, "deleted": result.deleted}
    print(json.dumps(summary))
    return 0


def _yaml(args: argparse.Namespace) -> int:
    from streamrec.features.feast_apply import render_feature_store_yaml

    print(render_feature_store_yaml(*_settings(args)), end="")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=None, help="project namespace (default: STREAMREC_PROJECT)")
    parser.add_argument("--redis-url", default=None, help="redis:// URL (default: STREAMREC_REDIS_URL)")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="registry and batch data (default: STREAMREC_FEATURES_STATE_DIR)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `features` command group to the `streamrec` parser's subparsers."""
    group = subparsers.add_parser("features", help="the Feast repository: apply it, print its feature_store.yaml")
    sub = group.add_subparsers(dest="features_command", required=True)

    p = sub.add_parser("apply", help="create or update the Feast registry (the equivalent of `feast apply`)")
    _common(p)
    p.set_defaults(handler=_apply)

    p = sub.add_parser("yaml", help="print the feature_store.yaml for these settings, for the `feast` CLI")
    _common(p)
    p.set_defaults(handler=_yaml)
