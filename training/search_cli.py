"""`streamrec search ...`: export the text encoder, evaluate search on graded labels, train the search ranker."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction, guarded: Callable[[Handler], Handler]) -> None:  # type: ignore[type-arg]
    """Add `search export-encoder|evaluate|train`; `guarded` wraps each handler as training/cli.py wraps its own."""
    search = subparsers.add_parser("search", help="product search: the text encoder, evaluation, the ranker")
    commands = search.add_subparsers(dest="search_command", required=True)

    p = commands.add_parser("export-encoder", help="export the packaged MiniLM text encoder to ONNX (fp32, int8)")
    p.add_argument("--out", type=Path, default=None, help="encoder directory (default: the scorer's default)")
    p.set_defaults(handler=guarded(_export_encoder))

    p = commands.add_parser("evaluate", help="retrieval and ranking quality on graded labels (Home Depot layout)")
    p.add_argument("--train", type=Path, required=True, help="labels the ranker learns from (and the catalogue)")
    p.add_argument("--test", type=Path, default=None, help="labels to score; absent: folds of --train by term")
    p.add_argument("--encoder", type=Path, default=None, help="encoder directory (exported there when absent)")
    p.add_argument("--cache", type=Path, default=Path(".streamrec/search/cache"), help="title embeddings cache")
    p.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    p.set_defaults(handler=guarded(_evaluate))

    p = commands.add_parser("train", help="train the search ranker on graded labels for the scorer")
    p.add_argument("--labels", type=Path, required=True, help="graded labels (Home Depot layout)")
    p.add_argument("--out", type=Path, default=Path(".streamrec/search"), help="where the scorer reads the ranker")
    p.add_argument("--encoder", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=Path(".streamrec/search/cache"))
    p.set_defaults(handler=guarded(_train))


def _export_encoder(args: argparse.Namespace) -> int:
    from streamrec.search.encoder import default_encoder_dir
    from streamrec.training.text_encoder import export_encoder

    print(export_encoder(args.out or default_encoder_dir()))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from streamrec.training.search_eval import evaluate_search

    report = evaluate_search(args.train, args.test, encoder_dir=args.encoder, cache_dir=args.cache, log=_log)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from streamrec.training.search_eval import train_served_ranker

    print(train_served_ranker(args.labels, args.out, encoder_dir=args.encoder, cache_dir=args.cache, log=_log))
    return 0
