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
from streamrec.training.baselines import BASELINES, VSKNN
from streamrec.training.datasets import Dataset
from streamrec.training.metrics import Prefixes, RankResult, all_prefixes, rank_prefixes, summarize
from streamrec.training.protocol import Split, make_split
from streamrec.training.train import MODEL_PRESETS
from streamrec.training.type_weights import NO_SIGNALS, TYPED_KNN, TYPED_MODELS, Choice, choose_knn_weights
from streamrec.training.type_weights import report as weights_report

# session kNN blended with a neural preset (training/hybrid.py): name -> the neural part
HYBRIDS = {"v-sknn+gru4rec": "gru4rec", "v-sknn+sasrec": "sasrec"}
DEFAULT_MODELS = (
    "pop",
    "s-pop",
    "item-knn",
    "v-sknn",
    "gru4rec",
    "sasrec",
    "v-sknn+gru4rec",
    "v-sknn+sasrec",
    *TYPED_MODELS,  # evaluated where the data have carts or purchases
)
KNOWN_MODELS = (*BASELINES, *MODEL_PRESETS, *HYBRIDS, *TYPED_MODELS)
# what `streamrec train` can publish and the scorer run: the neural presets, session kNN (training/knn_graph.py),
# their blends (training/hybrid.py) and the families weighing event types (training/type_weights.py)
SERVABLE_MODELS = frozenset({KNN_MODEL_TYPE, *MODEL_PRESETS, *HYBRIDS, *TYPED_MODELS})
# the servable models from the fewest choices made on data to the most: kNN has no trained weights, a typed model
# adds a chosen weighting to its family, a blend adds a weight and a second model
SIMPLEST_FIRST = (KNN_MODEL_TYPE, *MODEL_PRESETS, *TYPED_MODELS, *HYBRIDS)
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


def evaluate_typed_knn(split: Split, test: Prefixes) -> dict[str, Any]:
    """V-SKNN with the type weighting chosen on validation, refitted on all training sessions with their kinds."""
    start = time.perf_counter()
    choice = choose_knn_weights(split)
    model = VSKNN(type_weights=choice.weights).fit(split.train, len(split.vocab), split.train_kinds)
    seconds = time.perf_counter() - start
    return _entry(rank_prefixes(model.score, test), seconds, {"valid": choice.valid, **weights_report(choice)})


def best_by_validation(models: dict[str, Any], among: Sequence[str] | None = None) -> str:
    """The model with the best validation MRR@20 (HR@20 breaks ties): selection that never sees the test set."""
    names = [m for m in (among or models) if m in models]
    return max(names, key=lambda m: (models[m]["valid"]["mrr@20"], models[m]["valid"]["hr@20"]))


def servable_by_validation(models: dict[str, Any]) -> str | None:
    """The model to serve: the simplest servable one (SIMPLEST_FIRST) whose validation MRR@20 is within one
    standard error of the best servable one's (the one-standard-error rule). A small validation set cannot tell
    apart models closer than that, and on such data the simpler model held up better on test."""
    names = [m for m in SIMPLEST_FIRST if m in models]
    if not names:
        return None
    best = models[best_by_validation(models, names)]["valid"]
    floor = best["mrr@20"] - best.get("mrr@20_se", 0.0)
    return next(m for m in names if models[m]["valid"]["mrr@20"] >= floor)


@dataclass
class NeuralRun:
    trained: Any  # train.Trained
    config: Any  # the train.TrainConfig it ran with
    tuning: dict[str, Any] | None = None  # tune.summary of the search before it, when there was one
    weighting: Choice | None = None  # the type weighting chosen on validation, for a typed model


def train_neural(
    name: str, split: Split, seed: int, progress: bool, log: Callable[[str], None], tune_seconds: float = 0.0
) -> NeuralRun:
    """A neural preset (tuned on validation first, given a budget; a typed one's weighting chosen on validation
    next), its epochs chosen on validation and its refit on all training sessions."""
    from streamrec.training.pipeline import preset  # torch is imported only when a neural model is asked for
    from streamrec.training.train import select_and_train
    from streamrec.training.tune import tuned_config
    from streamrec.training.type_weights import choose_neural_weights

    family = TYPED_MODELS.get(name, name)
    cfg, tuning = tuned_config(preset(family, seed=seed, progress=progress), split, tune_seconds, log)
    weighting = None
    if name in TYPED_MODELS:
        cfg, weighting = choose_neural_weights(cfg, split, log)

    def on_epoch(epoch: int, loss: float, scores: dict[str, float]) -> None:
        log(f"  {name} epoch {epoch}: loss {loss:.4f} valid {scores}")

    valid = all_prefixes(split.valid)
    kinds = (split.fit_kinds, split.train_kinds)
    trained = select_and_train(split.fit, split.train, valid, cfg, len(split.vocab), on_epoch, kinds)
    return NeuralRun(trained, cfg, tuning, weighting)


def evaluate_trained(name: str, run: NeuralRun, test: Prefixes) -> dict[str, Any]:
    from streamrec.training.train import torch_scorer

    trained = run.trained
    result = rank_prefixes(torch_scorer(trained.model, run.config.max_seq_len), test)
    extra: dict[str, Any] = {"epochs": trained.epochs, "valid": trained.selection.valid[trained.epochs - 1]}
    if run.tuning is not None:
        extra["tuning"] = run.tuning
    if run.weighting is not None:
        extra |= weights_report(run.weighting)
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
    skipped: dict[str, str] = {}
    neural_runs: dict[str, NeuralRun] = {}  # a hybrid reuses the run of its neural part

    def neural_run(name: str) -> NeuralRun:
        if name not in neural_runs:
            neural_runs[name] = train_neural(name, split, seed, progress, log, tune_seconds)
        return neural_runs[name]

    for name in models:
        if name in TYPED_MODELS and not split.has_signals:
            skipped[name] = NO_SIGNALS
            continue
        log(f"evaluating {name}")
        if name == TYPED_KNN:
            results[name] = evaluate_typed_knn(split, test)
        elif name in BASELINES:
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
        "skipped": skipped,
        "best_by_validation": best_by_validation(results),
        "best_servable_by_validation": best_by_validation(results, among=sorted(SERVABLE_MODELS)) if servable else None,
        "served_by_validation": servable_by_validation(results),
        "selection_rule": "served: the simplest servable model within one standard error of the best validation MRR@20",
        "seconds": round(time.perf_counter() - start, 1),
        "tune_seconds_per_model": tune_seconds,
    }
    if dataset.name == "yoochoose-100k":
        report["reference_srgnn"] = SRGNN_YOOCHOOSE_100K
    return report
