"""Hyper-parameter search for the neural presets on the validation split, within a time budget (Optuna's TPE).

Each trial fits a model to the fitting sessions with early stopping on validation MRR@20 (train.fit) and scores
its best epoch; the test split plays no part. The preset itself is the first trial, so the result is never worse
on validation than the untuned model. The searched settings are the ones a careful reimplementation study of
GRU4Rec found to matter among those this trainer has (learning rate, dropout, embedding and hidden size, batch
size), and depth for SASRec; the loss stays full cross-entropy over all items, so negative sampling is not a
setting here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from streamrec.training.metrics import Prefixes, all_prefixes
from streamrec.training.models import build_model
from streamrec.training.protocol import Split
from streamrec.training.train import TrainConfig, fit, seed_everything

MAX_TRIALS = 200  # the time budget decides; this only bounds a budget given generously on tiny data


@dataclass(frozen=True)
class Tuned:
    config: TrainConfig
    valid_mrr: float  # of the best trial
    trials: list[dict[str, Any]] = field(default_factory=list)  # params, validation MRR@20, epochs, seconds
    seconds: float = 0.0


def search_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    """The settings one trial tries, drawn by `trial` (an optuna.Trial)."""
    params: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-4, 2e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "embedding_dim": trial.suggest_categorical("embedding_dim", [32, 64, 100, 128]),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
    }
    if base.model == "gru4rec":
        params["hidden_size"] = params["embedding_dim"]  # the output is tied to the input embedding
    else:
        params["num_layers"] = trial.suggest_int("num_layers", 1, 3)
    return params


def preset_params(base: TrainConfig) -> dict[str, Any]:
    """The searched settings as `base` has them."""
    extra = ("hidden_size",) if base.model == "gru4rec" else ("num_layers",)
    return {key: getattr(base, key) for key in ("lr", "dropout", "embedding_dim", "batch_size", *extra)}


def tune(
    base: TrainConfig,
    fit_seqs: list[Any],
    valid: Prefixes,
    n_items: int,
    budget_s: float,
    *,
    max_trials: int = MAX_TRIALS,
    log: Callable[[str], None] = lambda _: None,
) -> Tuned:
    """The best settings found for `base` within `budget_s` seconds (a trial under way when it runs out finishes)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = search_space(trial, base)
        cfg = replace(base, **params)
        started = time.perf_counter()
        seed_everything(cfg.seed)  # the same initial weights as select_and_train's: trial 0 is the preset's run
        history = fit(build_model(cfg.model, cfg.model_args(n_items)), fit_seqs, cfg, valid)
        mrr = history.valid[history.best_epoch - 1]["mrr@20"]
        trials.append(
            {
                "params": params,
                "valid_mrr@20": mrr,
                "epochs": history.best_epoch,
                "seconds": time.perf_counter() - started,
            }
        )
        log(f"  trial {trial.number}: {params} -> validation MRR@20 {mrr} at epoch {history.best_epoch}")
        return float(mrr)

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    drawn = {key: value for key, value in preset_params(base).items() if key != "hidden_size"}  # derived, not drawn
    study.enqueue_trial(drawn)
    study.optimize(objective, n_trials=max_trials, timeout=budget_s)
    best = trials[study.best_trial.number]
    config = replace(base, **best["params"])
    return Tuned(config, best["valid_mrr@20"], trials, time.perf_counter() - started)


def summary(tuned: Tuned, base: TrainConfig) -> dict[str, Any]:
    """What a report says of a search: its budget's use, the preset's and the best validation MRR@20, the winner."""
    chosen = asdict(tuned.config)
    return {
        "trials": len(tuned.trials),
        "seconds": round(tuned.seconds, 1),
        "preset_valid_mrr@20": tuned.trials[0]["valid_mrr@20"] if tuned.trials else None,
        "best_valid_mrr@20": tuned.valid_mrr,
        "best": {key: chosen[key] for key in preset_params(base)},
    }


def tuned_config(
    base: TrainConfig, split: Split, budget_s: float, log: Callable[[str], None] = lambda _: None
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """`base` searched on `split`'s validation for `budget_s` seconds, with the search's summary; `base` itself
    and no summary when there is no budget."""
    if budget_s <= 0:
        return base, None
    log(f"  tuning {base.model} on validation for {budget_s:g} s")
    tuned = tune(base, split.fit, all_prefixes(split.valid), len(split.vocab), budget_s, log=log)
    return tuned.config, summary(tuned, base)
