"""The `train`, `evaluate` and `export` subcommands of `streamrec`; torch is imported inside the handlers only."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the training subcommands to the `streamrec` argument parser."""
    train = subparsers.add_parser("train", help="train a session model and publish it to a model registry")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="train on the seeded synthetic clickstream")
    train.add_argument("--sessions", type=int, default=4000, help="synthetic sessions (default 4000)")
    train.add_argument("--items", type=int, default=500, help="synthetic items (default 500)")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="model registry directory")
    train.add_argument("--if-empty", action="store_true", help="do nothing when the registry has a version")
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from streamrec.artifact import list_versions

    if getattr(args, "if_empty", False) and list_versions(args.out):
        print(f"{args.out} already holds {list_versions(args.out)[-1]}; nothing to do")
        return 0
    from training.synthetic import SyntheticConfig, generate
    from training.train import TrainConfig, train_session_model

    config = SyntheticConfig(n_items=args.items, n_sessions=args.sessions)
    version_dir = train_session_model(
        generate(config),
        args.out,
        epochs=args.epochs or TrainConfig.epochs,
        seed=args.seed,
        source=f"synthetic(n_items={args.items}, n_sessions={args.sessions}, seed={config.seed})",
    )
    print(version_dir)
    return 0
