"""Benchmark: session models vs baselines on the real clickstreams (DESIGN §5), one JSON line per dataset.

    nice .venv/bin/python -m streamrec.bench.eval_models [--datasets yoochoose-100k diginetica-sample taobao]
                                                 [--models ...] [--data-dir DIR] [--export REGISTRY]

For each dataset: every model's test HR@20/MRR@20/NDCG@20 (in %), train seconds and inference ms; the model the
evaluation serves, chosen on the validation split ("figure": the simplest servable model within one standard
error of the best, training/evaluate.py), the baseline it is compared with (SR-GNN's own figures on the
YooChoose 100k split, from ../shared/data/README.md; elsewhere the best baseline by validation) and their
ratio, whether it beats every baseline on test MRR@20 (V-SKNN included; a tie does not beat), and the best
model of all by validation (which can be a baseline). With --export, the best
neural model of the first dataset is trained once more, exported to ONNX fp32/fp16/int8 and published to
REGISTRY, and one more line gives the variants' figures.
When ../shared/data is absent, one line says so ("skipped") and the exit status is 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from streamrec.bench.common import emit
from streamrec.errors import DataError
from streamrec.training.datasets import DATASETS, default_data_dir, load_dataset
from streamrec.training.evaluate import DEFAULT_MODELS, SRGNN_YOOCHOOSE_100K, best_by_validation, evaluate_dataset

ROOT = Path(__file__).resolve().parents[1]

BASELINES = ("pop", "s-pop", "item-knn", "v-sknn")
TIME_LIMIT_S = 20 * 60  # `evaluate --dataset yoochoose-100k` for all models must finish within this


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ratio(figure: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    return {k: round(figure[k] / baseline[k], 3) for k in ("hr@20", "mrr@20") if baseline.get(k)}


def _against_baselines(results: dict[str, Any], served: str) -> dict[str, Any]:
    """Whether the served model's test MRR@20 is above every baseline's, and the strongest baseline on test."""
    baselines = [m for m in BASELINES if m in results]
    if not baselines:
        return {}
    strongest = max(baselines, key=lambda m: results[m]["mrr@20"])
    return {
        "strongest_baseline_on_test": strongest,
        "beats_every_baseline": results[served]["mrr@20"] > results[strongest]["mrr@20"],
    }


def bench_dataset(name: str, data_dir: Path | None, models: list[str]) -> dict[str, Any]:
    dataset = load_dataset(name, data_dir)
    start = time.perf_counter()
    report = evaluate_dataset(dataset, models, log=_log)
    seconds = round(time.perf_counter() - start, 1)
    results = report["models"]
    best = report["served_by_validation"] or report["best_by_validation"]
    figure: dict[str, Any] = {
        "model": best,
        **{k: results[best][k] for k in ("hr@20", "mrr@20", "ndcg@20", "train_seconds")},
    }
    baseline: dict[str, Any]
    if name == "yoochoose-100k":
        baseline = {"model": "SR-GNN (its own code, same split; ../shared/data/README.md)", **SRGNN_YOOCHOOSE_100K}
    else:
        base = best_by_validation(results, [m for m in BASELINES if m in results])
        baseline = {"model": base, "hr@20": results[base]["hr@20"], "mrr@20": results[base]["mrr@20"]}
    line: dict[str, Any] = {
        "bench": "eval_models",
        "dataset": name,
        "data_files": [str(p) for p in dataset.files],
        "split": report["split"],
        "figure": figure,
        "baseline": baseline,
        "ratio": _ratio(figure, baseline),
        "models": results,
        "best_overall_by_validation": report["best_by_validation"],
        **_against_baselines(results, best),
        "seconds": seconds,
    }
    if name == "yoochoose-100k":
        line["within_time_limit"] = seconds <= TIME_LIMIT_S
        line["beats_srgnn"] = all(figure[k] > SRGNN_YOOCHOOSE_100K[k] for k in ("hr@20", "mrr@20"))
    return line


def bench_export(name: str, data_dir: Path | None, model: str, registry: Path) -> dict[str, Any]:
    from streamrec import artifact
    from streamrec.training.pipeline import train_on_dataset

    start = time.perf_counter()
    version = train_on_dataset(load_dataset(name, data_dir), model, registry, progress=False, log=_log)
    manifest = artifact.load_manifest(version)
    return {
        "bench": "eval_models.export",
        "dataset": name,
        "model": model,
        "version": str(version),
        "figure": {k: manifest.metrics[k] for k in ("hr@20", "mrr@20", "train_seconds")},
        "variants": manifest.metrics["variants"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--export", type=Path, default=None, metavar="REGISTRY")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir(ROOT)
    if data_dir is None or not data_dir.is_dir():
        reason = f"no real data: {args.data_dir or ROOT / '../shared/data'} does not exist (pass --data-dir)"
        emit({"bench": "eval_models", "skipped": reason}, as_json=True)
        return 0
    best = None
    for name in args.datasets:
        try:
            line = bench_dataset(name, data_dir, args.models)
        except DataError as exc:
            emit({"bench": "eval_models", "dataset": name, "skipped": str(exc)}, as_json=True)
            continue
        emit(line, as_json=True)
        best = best or (name, line["figure"]["model"])
    if args.export and best:
        emit(bench_export(best[0], data_dir, best[1], args.export), as_json=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
