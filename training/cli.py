"""The `train`, `evaluate` and `export` subcommands of `streamrec`; torch is imported inside the handlers only.

Progress and logs go to stderr; stdout carries the result only (the version directory on the last line, or
one JSON object), so scripts can read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from streamrec.commands import run_package_cli
from streamrec.errors import ArtifactError, DataError
from streamrec.training.search_cli import register as register_search

if TYPE_CHECKING:  # pandas and the loaders only when a handler runs
    from streamrec.training.datasets import Dataset

Handler = Callable[[argparse.Namespace], int]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="named datasets dir (default ../shared/data)")
    parser.add_argument("--test-days", type=float, default=None, help="override the dataset's test span in days")
    parser.add_argument("--valid-days", type=float, default=None, help="override the validation span in days")
    parser.add_argument("--seed", type=int, default=0)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `train`, `evaluate` and `export` to the `streamrec` argument parser; each sets `handler`."""
    train = subparsers.add_parser("train", help="train a session model and publish it to a model registry")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="train on the seeded synthetic clickstream")
    source.add_argument("--dataset", help="yoochoose-100k, diginetica-sample, taobao, or a data file's path")
    train.add_argument(
        "--model",
        default=None,
        help="gru4rec, sasrec, v-sknn, ..., or auto: the best servable model on validation "
        "(default: gru4rec synthetic, else sasrec)",
    )
    train.add_argument("--sessions", type=int, default=4000, help="synthetic sessions (default 4000)")
    train.add_argument("--items", type=int, default=500, help="synthetic items (default 500)")
    train.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default: the model's)")
    train.add_argument(
        "--tune-seconds", type=float, default=0.0, help="search a neural model's settings on validation this long first"
    )
    train.add_argument("--out", type=Path, required=True, help="model registry directory")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--if-empty", action="store_true", help="do nothing when the registry already has a version")
    _data_options(train)
    train.set_defaults(handler=_guarded(_train))

    evaluate = subparsers.add_parser("evaluate", help="evaluate baselines and models on a dataset (DESIGN §5)")
    evaluate.add_argument("--dataset", required=True, help="yoochoose-100k, diginetica-sample, taobao, or a path")
    evaluate.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="default: pop s-pop item-knn v-sknn gru4rec sasrec v-sknn+gru4rec v-sknn+sasrec",
    )
    evaluate.add_argument(
        "--tune-seconds", type=float, default=0.0, help="search each neural model's settings on validation this long"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--progress", action="store_true", help="progress bars while training")
    _data_options(evaluate)
    evaluate.set_defaults(handler=_guarded(_evaluate))

    export = subparsers.add_parser("export", help="publish a checkpoint as ONNX fp32/fp16/int8 to a model registry")
    export.add_argument("--checkpoint", type=Path, required=True, help="a model.pt written by `train`")
    export.add_argument("--out", type=Path, required=True, help="model registry directory")
    export.add_argument("--dataset", default=None, help="measure the variants on this dataset's test split")
    _data_options(export)
    export.set_defaults(handler=_guarded(_export))

    ranker = subparsers.add_parser("train-ranker", help="train the MLP ranker for a session model; publish both")
    ranker.add_argument("--version", type=Path, required=True, help="the session model's version directory")
    ranker_data = ranker.add_mutually_exclusive_group(required=True)
    ranker_data.add_argument("--dataset", help="yoochoose-100k, taobao, diginetica-sample, or a data file's path")
    ranker_data.add_argument("--synthetic", action="store_true", help="the seeded synthetic clickstream")
    ranker.add_argument("--sessions", type=int, default=4000)
    ranker.add_argument("--items", type=int, default=500)
    ranker.add_argument("--out", type=Path, default=None, help="registry to publish to (default: the version's)")
    ranker.add_argument("--candidates", choices=("auto", "refit", "published"), default="auto")
    ranker.add_argument("--fit-model", default="", help="keep/reuse the refitted candidate model at this path")
    ranker.add_argument("--ablate", nargs="*", default=[], help="feature groups to ignore: stream, session, ...")
    ranker.add_argument("--epochs", type=int, default=None)
    _data_options(ranker)
    ranker.set_defaults(handler=_guarded(_train_ranker))
    register_search(subparsers, _guarded)


def _guarded(handler: Handler) -> Handler:
    """Data and artifact problems end the command with a message and exit code 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (DataError, ArtifactError) as exc:
            _log(f"error: {exc}")
            return 2

    return run


def _load(args: argparse.Namespace, name: str) -> Dataset:
    from streamrec.training.datasets import load_dataset

    dataset = load_dataset(name, args.data_dir, args.test_days, args.valid_days)
    _log(f"loaded {dataset.name}: {json.dumps(dataset.report.as_dict())}")
    return dataset


def _train(args: argparse.Namespace) -> int:
    from streamrec.artifact import list_versions

    if args.if_empty and list_versions(args.out):
        print(f"{args.out} already holds {list_versions(args.out)[-1]}; nothing to do")
        return 0
    if args.synthetic:
        from streamrec.training.synthetic import SyntheticConfig, generate
        from streamrec.training.train import TrainConfig, train_session_model

        config = SyntheticConfig(n_items=args.items, n_sessions=args.sessions)
        version_dir = train_session_model(
            generate(config),
            args.out,
            epochs=args.epochs or TrainConfig.epochs,
            seed=args.seed,
            source=f"synthetic(n_items={args.items}, n_sessions={args.sessions}, seed={config.seed})",
        )
    else:
        from streamrec.training.pipeline import train_on_dataset

        dataset = _load(args, args.dataset)
        version_dir = train_on_dataset(
            dataset,
            args.model or "sasrec",
            args.out,
            seed=args.seed,
            epochs=args.epochs,
            progress=not args.no_progress,
            log=_log,
            tune_seconds=args.tune_seconds,
        )
    print(version_dir)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from streamrec.training.evaluate import DEFAULT_MODELS, evaluate_dataset

    dataset = _load(args, args.dataset)
    try:
        report = evaluate_dataset(
            dataset,
            args.models or DEFAULT_MODELS,
            seed=args.seed,
            progress=args.progress,
            log=_log,
            tune_seconds=args.tune_seconds,
        )
    except ValueError as exc:
        _log(f"error: {exc}")
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['dataset']}: {report['split']}")
    print(f"{'model':<16}{'HR@20':>8}{'MRR@20':>8}{'NDCG@20':>9}{'train s':>9}{'ms/sess':>9}")
    for name, row in report["models"].items():
        print(
            f"{name:<16}{row['hr@20']:>8.2f}{row['mrr@20']:>8.2f}{row['ndcg@20']:>9.2f}"
            f"{row['train_seconds']:>9.1f}{row['inference_ms_per_session']:>9.3f}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from streamrec.training.pipeline import export_checkpoint

    if not args.checkpoint.is_file():
        raise ArtifactError(f"checkpoint {args.checkpoint} does not exist")
    dataset = _load(args, args.dataset) if args.dataset else None
    print(export_checkpoint(args.checkpoint, args.out, dataset))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m streamrec.training.cli ...`: the same subcommands without the rest of `streamrec`."""
    return run_package_cli("python -m streamrec.training.cli", register, argv)


if __name__ == "__main__":
    raise SystemExit(main())


def _train_ranker(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from streamrec.training.ranker import synthetic_dataset, train_ranker
    from streamrec.training.ranker_model import RankerConfig

    cfg = RankerConfig(candidates=args.candidates, seed=args.seed, fit_model=args.fit_model, ablate=tuple(args.ablate))
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    dataset = synthetic_dataset(args.sessions, args.items) if args.synthetic else _load(args, args.dataset)
    print(train_ranker(args.version, dataset, args.out, cfg, log=_log))
    return 0
