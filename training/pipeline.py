"""Train a named model on a dataset and publish it; or publish an existing checkpoint. What `train`/`export` run.

train_on_dataset: protocol split -> epochs chosen on validation -> refit on all training sessions -> test
metrics -> checkpoint (model.pt) and validation curve (valid_curve.png) -> ONNX fp32/fp16/int8 -> registry.
Session kNN (`v-sknn`) is fitted on the training sessions and published as its ONNX graph (training/knn_graph.py),
a hybrid (`v-sknn+gru4rec`, `v-sknn+sasrec`) as the blend of both parts (training/hybrid.py); `auto` evaluates
every servable model on validation and publishes the best.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from streamrec.artifact import HYBRID_MODEL_TYPE, KNN_MODEL_TYPE
from streamrec.errors import ArtifactError, DataError
from streamrec.features.schema import MAX_RECENT_ITEMS
from streamrec.training.canonical import events_sha256
from streamrec.training.datasets import Dataset
from streamrec.training.evaluate import HYBRIDS
from streamrec.training.export import publish_model
from streamrec.training.metrics import RankResult, all_prefixes, rank_prefixes, summarize
from streamrec.training.models import load_checkpoint, save_checkpoint
from streamrec.training.plots import plot_validation_curve
from streamrec.training.protocol import ProtocolConfig, Split, make_split
from streamrec.training.sequences import popular_items
from streamrec.training.train import MODEL_PRESETS, TrainConfig, select_and_train, torch_scorer
from streamrec.training.tune import tuned_config
from streamrec.training.type_weights import (
    NO_SIGNALS,
    TYPED_KNN,
    TYPED_MODELS,
    choose_knn_weights,
    choose_neural_weights,
)
from streamrec.training.type_weights import report as weights_report

CHECKPOINT = "model.pt"
CURVE = "valid_curve.png"


def preset(model_name: str, **overrides: Any) -> TrainConfig:
    if model_name not in MODEL_PRESETS:
        known = ", ".join((*MODEL_PRESETS, KNN_MODEL_TYPE, *HYBRIDS, *TYPED_MODELS, "auto"))
        raise DataError(f"unknown model {model_name!r}; known: {known}")
    return replace(MODEL_PRESETS[model_name], **{k: v for k, v in overrides.items() if v is not None})


def data_summary(dataset: Dataset, split: Split) -> dict[str, Any]:
    """The manifest's `data` entry: where the events came from, their digest, counts, protocol and split."""
    return {
        "source": dataset.name,
        "files": [p.name for p in dataset.files],
        "sha256": events_sha256(dataset.events),
        "n_events": len(dataset.events),
        "n_sessions": int(dataset.events["session_id"].nunique()),
        "load_report": dataset.report.as_dict(),
        "protocol": asdict(dataset.protocol),
        "split": split.sizes(),
    }


AUTO = "auto"


def train_on_dataset(
    dataset: Dataset,
    model_name: str,
    registry: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    tune_seconds: float = 0.0,
) -> Path:
    """Train `model_name` (a servable model, or `auto`) on `dataset` and publish it; returns the version directory.
    With `tune_seconds`, a neural model's settings are first searched on validation (training/tune.py)."""
    if model_name == AUTO:
        model_name = choose_by_validation(dataset, seed=seed, progress=progress, log=log, tune_seconds=tune_seconds)
    if model_name in (KNN_MODEL_TYPE, TYPED_KNN):
        return publish_knn(dataset, registry, typed=model_name == TYPED_KNN, log=log)
    neural = HYBRIDS.get(model_name) or TYPED_MODELS.get(model_name) or model_name
    cfg = preset(neural, seed=seed, epochs=epochs, progress=progress)
    split = make_split(dataset.events, dataset.protocol)
    log(f"{dataset.name}: {split.sizes()}")
    n_items = len(split.vocab)
    if model_name in TYPED_MODELS and not split.has_signals:
        raise DataError(f"{model_name} weighs carts and purchases, but {NO_SIGNALS}: train {neural} instead")
    cfg, tuning = tuned_config(cfg, split, tune_seconds, log)
    if tuning is not None:
        log(f"tuned {neural} on validation: {tuning}")
    if model_name in HYBRIDS:
        return publish_hybrid(dataset, model_name, registry, split, cfg, tuning, log=log)
    weighting: dict[str, Any] = {}
    if model_name in TYPED_MODELS:
        cfg, choice = choose_neural_weights(cfg, split, log)
        weighting = weights_report(choice)
        log(f"type weights {choice.weights} chosen on validation")

    def on_epoch(epoch: int, loss: float, valid: dict[str, float]) -> None:
        log(f"epoch {epoch}: loss {loss:.4f} valid {valid}")

    kinds = (split.fit_kinds, split.train_kinds)
    trained = select_and_train(split.fit, split.train, all_prefixes(split.valid), cfg, n_items, on_epoch, kinds)
    log(f"selected {trained.epochs} epochs on validation; refitted on all training sessions")
    test = all_prefixes(split.test)
    result = rank_prefixes(torch_scorer(trained.model, cfg.max_seq_len), test)
    valid = trained.selection.valid[trained.epochs - 1]
    train_seconds = round(trained.seconds, 1)
    metrics = test_metrics(result, valid, tuning, epochs=trained.epochs, train_seconds=train_seconds, **weighting)
    log(f"test {summarize(result.ranks)}")
    model_args = cfg.model_args(n_items)
    with tempfile.TemporaryDirectory(prefix="streamrec-train-") as tmp:
        history = trained.selection
        curve = plot_validation_curve(
            history.loss, history.valid, trained.epochs, f"{model_name} on {dataset.name}", Path(tmp) / CURVE
        )
        checkpoint = save_checkpoint(
            Path(tmp) / CHECKPOINT,
            trained.model,
            cfg.model,
            model_args,
            vocabulary=split.vocab.item_ids,
            popular_items=popular_items(split.train_items),
            max_seq_len=cfg.max_seq_len,
            metrics=metrics,
            data=data_summary(dataset, split),
            train_config=asdict(cfg),
            model_name=model_name,
        )
        log("exporting ONNX fp32, fp16 and int8")
        return _publish(
            registry,
            trained.model,
            dataset,
            split,
            model_type=cfg.model,
            model_args=model_args,
            max_seq_len=cfg.max_seq_len,
            metrics=metrics,
            extra_files={CHECKPOINT: checkpoint, CURVE: curve},
            variants=True,
            eval_prefixes=test,
        )


def choose_by_validation(
    dataset: Dataset,
    candidates: tuple[str, ...] = (KNN_MODEL_TYPE, "gru4rec", "sasrec", *HYBRIDS, *TYPED_MODELS),
    *,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] = print,
    tune_seconds: float = 0.0,
) -> str:
    """The servable model the evaluation chooses on validation, never seeing the test set (`served_by_validation`:
    the simplest within one standard error of the best MRR@20); it is then trained again as `train` trains it."""
    from streamrec.training.evaluate import evaluate_dataset

    report = evaluate_dataset(dataset, candidates, seed=seed, progress=progress, log=log, tune_seconds=tune_seconds)
    chosen = report["served_by_validation"]
    valid = {name: entry["valid"]["mrr@20"] for name, entry in report["models"].items()}
    log(f"auto: validation MRR@20 {valid}; publishing {chosen}")
    return chosen


def publish_knn(dataset: Dataset, registry: Path, typed: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fit V-SKNN on all training sessions and publish its graph; test figures are the baseline's, which the graph
    reproduces (validation figures from a fit on the fitting sessions, as for every model). `typed`: with the type
    weighting chosen on validation (training/type_weights.py)."""
    from streamrec.training.baselines import VSKNN
    from streamrec.training.knn_graph import SessionKNNGraph, knn_args

    split = make_split(dataset.events, dataset.protocol)
    log(f"{dataset.name}: {split.sizes()}")
    n_items = len(split.vocab)
    weighting: dict[str, Any] = {}
    if typed:
        if not split.has_signals:
            raise DataError(f"{TYPED_KNN} weighs carts and purchases, but {NO_SIGNALS}: train {KNN_MODEL_TYPE} instead")
        choice = choose_knn_weights(split)
        knn, valid, weighting = VSKNN(type_weights=choice.weights), choice.valid, weights_report(choice)
        log(f"type weights {choice.weights} chosen on validation")
    else:
        knn = VSKNN()
        valid = summarize(rank_prefixes(VSKNN().fit(split.fit, n_items).score, all_prefixes(split.valid)).ranks)
    knn.fit(split.train, n_items, split.train_kinds)
    result = rank_prefixes(knn.score, all_prefixes(split.test))
    metrics = test_metrics(result, valid, **weighting)
    log(f"test {summarize(result.ranks)}")
    graph = SessionKNNGraph(knn).eval()
    return _publish(registry, graph, dataset, split, KNN_MODEL_TYPE, knn_args(knn), MAX_RECENT_ITEMS, metrics)


def publish_hybrid(
    dataset: Dataset,
    name: str,
    registry: Path,
    split: Split,
    cfg: TrainConfig,
    tuning: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the neural part (`cfg`, epochs on validation), fit kNN, choose the blend's weight on validation (parts
    fitted on the fitting sessions), and publish the blend of the parts refitted on all training sessions."""
    from streamrec.training.hybrid import HybridGraph, fit_blend
    from streamrec.training.knn_graph import SessionKNNGraph, knn_args

    n_items = len(split.vocab)
    trained = select_and_train(split.fit, split.train, all_prefixes(split.valid), cfg, n_items)
    blend = fit_blend(split, trained, cfg.max_seq_len)
    log(f"{name}: {trained.epochs} epochs, weight {blend.weight} on validation {blend.valid}")
    train_seconds = round(trained.seconds, 1)
    metrics = test_metrics(
        blend.test, blend.valid, tuning, epochs=trained.epochs, weight=blend.weight, train_seconds=train_seconds
    )
    log(f"test {summarize(blend.test.ranks)}")
    model_args = {
        "weight": blend.weight,
        "knn": knn_args(blend.knn),
        "neural_type": cfg.model,
        "neural": cfg.model_args(n_items),
        "repeat_bias": cfg.repeat_bias,  # the scorer's rules treat repeats as the neural part does
    }
    graph = HybridGraph(SessionKNNGraph(blend.knn), trained.model, blend.weight, n_items).eval()
    return _publish(registry, graph, dataset, split, HYBRID_MODEL_TYPE, model_args, cfg.max_seq_len, metrics)


def test_metrics(
    result: RankResult, valid: dict[str, float], tuning: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A published version's `metrics`: test figures and their prefix count, validation figures, inference cost,
    what the model family adds (`extra`), and the search before it when there was one."""
    metrics: dict[str, Any] = summarize(result.ranks) | {
        "split": "test",
        "test_prefixes": len(result.ranks),
        "valid": valid,
        **extra,
        "inference_ms_per_session": round(result.ms_per_prefix(), 3),
    }
    if tuning is not None:
        metrics["tuning"] = tuning
    return metrics


def _publish(
    registry: Path,
    model: Any,
    dataset: Dataset,
    split: Split,
    model_type: str,
    model_args: dict[str, Any],
    max_seq_len: int,
    metrics: dict[str, Any],
    **options: Any,
) -> Path:
    """publish_model with what every version of a dataset's split carries: vocabulary, popular items, data."""
    return publish_model(
        registry,
        model,
        model_type=model_type,
        model_args=model_args,
        vocabulary=split.vocab.item_ids,
        max_seq_len=max_seq_len,
        popular=popular_items(split.train_items),
        data=data_summary(dataset, split),
        metrics=metrics,
        **options,
    )


def export_checkpoint(checkpoint: Path, registry: Path, dataset: Dataset | None = None) -> Path:
    """Publish a training checkpoint (with ONNX variants) as a new version. With `dataset`, the variants are
    measured on its test split, which must have the checkpoint's vocabulary."""
    model, meta = load_checkpoint(checkpoint)
    vocabulary: list[str] = meta["vocabulary"]
    prefixes, metrics = None, dict(meta.get("metrics", {}))
    if dataset is not None:
        protocol = ProtocolConfig(**meta["data"]["protocol"]) if "protocol" in meta.get("data", {}) else None
        split = make_split(dataset.events, protocol or dataset.protocol)
        if split.vocab.item_ids != vocabulary:
            raise ArtifactError(f"{checkpoint} was not trained on {dataset.name}: the vocabularies differ")
        prefixes = all_prefixes(split.test)
        metrics |= summarize(rank_prefixes(torch_scorer(model, meta["max_seq_len"]), prefixes).ranks)
    return publish_model(
        registry,
        model,
        model_type=meta["model_type"],
        model_args=meta["model_args"],
        vocabulary=vocabulary,
        max_seq_len=meta["max_seq_len"],
        popular=meta.get("popular_items", []),
        data=meta.get("data", {}),
        metrics=metrics,
        extra_files={CHECKPOINT: checkpoint},
        variants=True,
        eval_prefixes=prefixes,
    )
