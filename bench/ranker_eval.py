"""Benchmark: what the MLP ranker adds over retrieval alone on held-back sessions, and what it costs per request.

    nice .venv/bin/python -m streamrec.bench.ranker_eval [--dataset yoochoose-100k] [--version REGISTRY/VERSION]
                                               [--model gru4rec] [--out REGISTRY] [--candidates auto|refit|published]
                                               [--fit-model PATH] [--ablate GROUP ...]

Trains a ranker for the session model in --version (without it, first trains --model on the dataset) with
training/ranker.py, publishes it to --out (default: a temporary registry), and prints one JSON line: the test
split's HR@20/MRR@20/NDCG@20 of retrieval alone ("baseline": the session model's top-200 order) and of
retrieval + ranker ("figure"), their ratio, the share of test targets among the candidates (the ranker's
ceiling on HR), and the median/p99 time of `MlpReranker.rerank` for 200 candidates on this CPU.
When the dataset's files are absent, one line says so ("skipped") and the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.bench.common import emit
from streamrec.errors import ArtifactError, DataError


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rerank_latency(version_dir: Path, calls: int = 2000) -> dict[str, float]:
    """ms per rerank of 200 candidates (history of 10), item cache filled with every vocabulary item."""
    from streamrec.artifact import load_vocabulary
    from streamrec.features.ranker_inputs import RAW_FEATURES
    from streamrec.features.session_store import SessionState
    from streamrec.serving.item_cache import ItemFeatureCache, Snapshot
    from streamrec.serving.ranking import load_reranker

    vocab = load_vocabulary(version_dir)[1:]
    rng = np.random.default_rng(0)
    cache = ItemFeatureCache(None, "bench")
    rows = [
        dict(zip(RAW_FEATURES, rng.integers(0, 50, len(RAW_FEATURES)).tolist(), strict=True)) | {"_event_ts_ms": 0}
        for _ in vocab
    ]
    cache.snapshot = Snapshot.build(vocab, rows, 3_600_000)
    reranker = load_reranker(version_dir, cache)
    assert reranker is not None, f"{version_dir} has no ranker"
    n = min(200, len(vocab))
    candidates = [(vocab[i], float(-r)) for r, i in enumerate(rng.choice(len(vocab), n, replace=False))]
    state = SessionState(items=[vocab[i] for i in rng.choice(len(vocab), 10)])
    loop = asyncio.new_event_loop()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        loop.run_until_complete(reranker.rerank(state, candidates))
        times.append(time.perf_counter() - start)
    loop.close()
    ms = np.array(times[calls // 10 :]) * 1000  # the first tenth warms caches up
    return {"candidates": n, "p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.quantile(ms, 0.99)), 3)}


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from streamrec.training.datasets import load_dataset
    from streamrec.training.ranker import train_ranker
    from streamrec.training.ranker_model import RankerConfig

    dataset = load_dataset(args.dataset, args.data_dir)
    source = args.version
    if source is None:
        from streamrec.training.pipeline import train_on_dataset

        _log(f"training the session model ({args.model}) first")
        source = train_on_dataset(dataset, args.model, out, progress=False, log=_log)
    cfg = RankerConfig(candidates=args.candidates, fit_model=args.fit_model, ablate=tuple(args.ablate))
    version_dir = train_ranker(source, dataset, out, cfg, log=_log)
    from streamrec.artifact import load_manifest

    metrics = load_manifest(version_dir).metrics["ranker"]
    return {
        "bench": "ranker_eval",
        "dataset": dataset.name,
        "files": [p.name for p in dataset.files],
        "split": f"test, {metrics['test_prefixes']} prefixes",
        "retrieval_model": f"{load_manifest(Path(source)).model_type} {Path(source).name}",
        "figure": {"model": "retrieval top-200 + MLP ranker", **metrics["ranked"]},
        "baseline": {"model": "retrieval alone (session model order)", **metrics["retrieval"]},
        "ratio": metrics["ratio"],
        "gain_points": metrics["gain"],
        "target_in_candidates": metrics["target_in_candidates"],
        "candidates_for_training": metrics["candidates"],
        "ablated": list(args.ablate),
        "holdout": metrics["holdout"],
        "epochs": metrics["epochs"],
        "seconds": metrics["seconds"],
        "rerank": rerank_latency(version_dir),
        "version": str(version_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamrec.bench.ranker_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="yoochoose-100k")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--version", type=Path, default=None, help="session model version (default: train one)")
    parser.add_argument("--model", default="gru4rec", help="session model to train when --version is not given")
    parser.add_argument("--out", type=Path, default=None, help="registry to publish to (default: temporary)")
    parser.add_argument("--candidates", choices=("auto", "refit", "published"), default="auto")
    parser.add_argument("--fit-model", default="", help="keep/reuse the refitted candidate model at this path")
    parser.add_argument("--ablate", nargs="*", default=[], help="feature groups the ranker ignores (stream, ...)")
    parser.add_argument("--text", action="store_true", help="aligned text instead of one JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-ranker-") as tmp:
        try:
            figures = run(args, args.out or Path(tmp))
        except DataError as exc:
            emit({"bench": "ranker_eval", "dataset": args.dataset, "skipped": str(exc)}, not args.text)
            return 0
        except ArtifactError as exc:
            _log(f"error: {exc}")
            return 2
        emit(figures, not args.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
