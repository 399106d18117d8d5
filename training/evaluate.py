"""Evaluate baselines and neural models on one dataset under the protocol; the result is one JSON-able dict.

Every model is trained on the training sessions (neural models choose their epochs on the validation split
first, see `select_and_train`), then ranks every prefix of every test session over all items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from streamrec.artifact import KNN_MODEL_TYPE
from streamrec.training.baselines import BASELINES
from streamrec.training.datasets import Dataset
from streamrec.training.metrics import Prefixes, RankResult, all_prefixes, rank_prefixes, summarize
from streamrec.training.protocol import Split, make_split
from streamrec.training.train import MODEL_PRESETS

# session kNN blended with a neural preset (training/hybrid.py): name -> the neural part
HYBRIDS = {"v-sknn+gru4rec": "gru4rec", "v-sknn+sasrec": "sasrec"}
DEFAULT_MODELS = ("pop", "s-pop", "item-knn", "v-sknn", "gru4rec", "sasrec", "v-sknn+gru4rec", "v-sknn+sasrec")
KNOWN_MODELS = (*BASELINES, *MODEL_PRESETS, *HYBRIDS)
# what `streamrec train` can publish and the scorer run: the neural presets, session kNN (training/knn_graph.py)
# and their blends (training/hybrid.py)
SERVABLE_MODELS = frozenset({KNN_MODEL_TYPE, *MODEL_PRESETS, *HYBRIDS})
# SR-GNN's own code on the same YooChoose 100k split (../shared/data/README.md), for side-by-side figures
SRGNN_YOOCHOOSE_100K = {"hr@20": 67.33, "mrr@20": 35.78}


def _entry(result: RankResult, train_seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return summarize(result.ranks) | {
        "train_seconds": round(train_seconds, 1),
        "inference_ms_per_session": round(result.ms_per_prefix(), 3),
        **(extra or {}),
    }


def evaluate_baseline(name: str, split: Split, test: Prefixes) -> dict[str, Any]:
    """Validation figures from a fit on the fitting sessions (for choosing a best model without the test set),
    test figures from a fit on all training sessions."""
    on_fit = BASELINES[name]().fit(split.fit, len(split.vocab))
    valid = summarize(rank_prefixes(on_fit.score, all_prefixes(split.valid)).ranks)
    start = time.perf_counter()
    model = BASELINES[name]().fit(split.train, len(split.vocab))
    seconds = time.perf_counter() - start
    return _entry(rank_prefixes(model.score, test), seconds, {"valid": valid})


def best_by_validation(models: dict[str, Any], among: Sequence[str] | None = None) -> str:
    """The model with the best validation MRR@20 (HR@20 breaks ties): selection that never sees the test set."""
    names = [m for m in (among or models) if m in models]
    return max(names, key=lambda m: (models[m]["valid"]["mrr@20"], models[m]["valid"]["hr@20"]))


@dataclass
class NeuralRun:
    trained: Any  # train.Trained
    tuning: dict[str, Any] | None = None  # tune.summary of the search before it, when there was one


def train_neural(
    name: str, split: Split, seed: int, progress: bool, log: Callable[[str], None], tune_seconds: float = 0.0
) -> NeuralRun:
    """A neural preset (tuned on validation first, given a budget), its epochs chosen on validation and its refit
    on all training sessions."""
    from streamrec.training.pipeline import preset  # torch is imported only when a neural model is asked for
    from streamrec.training.train import select_and_train
    from streamrec.training.tune import tuned_config

    cfg, tuning = tuned_config(preset(name, seed=seed, progress=progress), split, tune_seconds, log)

    def on_epoch(epoch: int, loss: float, scores: dict[str, float]) -> None:
        log(f"  {name} epoch {epoch}: loss {loss:.4f} valid {scores}")

    valid = all_prefixes(split.valid)
    return NeuralRun(select_and_train(split.fit, split.train, valid, cfg, len(split.vocab), on_epoch), tuning)


def evaluate_trained(name: str, run: NeuralRun, test: Prefixes) -> dict[str, Any]:
    from streamrec.training.pipeline import preset
    from streamrec.training.train import torch_scorer

    trained = run.trained
    result = rank_prefixes(torch_scorer(trained.model, preset(name).max_seq_len), test)
    extra: dict[str, Any] = {"epochs": trained.epochs, "valid": trained.selection.valid[trained.epochs - 1]}
    if run.tuning is not None:
        extra["tuning"] = run.tuning
    return _entry(result, trained.seconds, extra)


def evaluate_hybrid(name: str, split: Split, run: NeuralRun) -> dict[str, Any]:
    """The blend's weight chosen on validation (parts fitted on the fitting sessions), test figures from the parts
    refitted on all training sessions."""
    from streamrec.training.hybrid import fit_blend
    from streamrec.training.pipeline import preset

    start = time.perf_counter()
    blend = fit_blend(split, run.trained, preset(HYBRIDS[name]).max_seq_len)
    seconds = run.trained.seconds + time.perf_counter() - start
    return _entry(blend.test, seconds, {"epochs": run.trained.epochs, "weight": blend.weight, "valid": blend.valid})


def evaluate_dataset(
    dataset: Dataset,
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] = lambda _: None,
    tune_seconds: float = 0.0,
) -> dict[str, Any]:
    """Figures in % for each model: hr@20, mrr@20, ndcg@20, train seconds, inference ms per session prefix.

    With `tune_seconds`, each neural preset's settings are first searched on validation for that long
    (training/tune.py); the search's time is reported apart from the training time."""
    unknown = [m for m in models if m not in KNOWN_MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {', '.join(KNOWN_MODELS)}")
    start = time.perf_counter()
    split = make_split(dataset.events, dataset.protocol)
    test = all_prefixes(split.test)
    log(f"{dataset.name}: {split.sizes()}")
    results: dict[str, Any] = {}
    neural_runs: dict[str, NeuralRun] = {}  # a hybrid reuses the run of its neural part

    def neural_run(name: str) -> NeuralRun:
        if name not in neural_runs:
            neural_runs[name] = train_neural(name, split, seed, progress, log, tune_seconds)
        return neural_runs[name]

    for name in models:
        log(f"evaluating {name}")
        if name in BASELINES:
            results[name] = evaluate_baseline(name, split, test)
        elif name in HYBRIDS:
            results[name] = evaluate_hybrid(name, split, neural_run(HYBRIDS[name]))
        else:
            results[name] = evaluate_trained(name, neural_run(name), test)
        results[name]["servable"] = name in SERVABLE_MODELS
        log(f"  {name}: {results[name]}")
    servable = [name for name in results if name in SERVABLE_MODELS]
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "files": [p.name for p in dataset.files],
        "load_report": dataset.report.as_dict(),
        "protocol": asdict(dataset.protocol),
        "split": split.sizes(),
        "metrics_unit": "%",
        "inference_note": "ms per test prefix (one recommendation for a session state), torch/numpy, batches of 256",
        "models": results,
        "best_by_validation": best_by_validation(results),
        "best_servable_by_validation": best_by_validation(results, among=sorted(SERVABLE_MODELS)) if servable else None,
        "seconds": round(time.perf_counter() - start, 1),
        "tune_seconds_per_model": tune_seconds,
    }
    if dataset.name == "yoochoose-100k":
        report["reference_srgnn"] = SRGNN_YOOCHOOSE_100K
    return report
