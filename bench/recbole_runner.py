"""RecBole's session models on prepared prefix files, run inside the peer's own environment (bench/peer_recbole.py).

    python recbole_runner.py WORKDIR --models GRU4Rec SASRec NARM SRGNN [--epochs 30] [--patience 3] [--seed 0]

WORKDIR/split holds the RecBole atomic files bench/peer_recbole.py wrote: `split.fit.inter`, `split.valid.inter`,
`split.test.inter` (one row per prefix: `session_id`, `item_id_list`, `item_id`, the target) and `split.train.inter`
(the fitting and validation sessions together). Each model runs the protocol streamrec's models run: its epochs
are chosen by validation MRR@20 (early stopping) on the fitting sessions, then a fresh model is fitted on all
training sessions for that many epochs and ranks the test prefixes over all items. Prints a JSON line per model
as it finishes, then one JSON object with them all.

It imports nothing of streamrec: it runs under the peer's interpreter, whose dependencies are not the package's.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

# RecBole 1.2 reloads its own checkpoints, which hold its config object, with torch.load's old default; torch
# 2.6 made weights_only=True the default, which refuses them
torch.load = functools.partial(torch.load, weights_only=False)  # type: ignore[assignment]

from recbole.config import Config  # type: ignore[import-not-found]  # noqa: E402
from recbole.data import create_dataset, data_preparation  # type: ignore[import-not-found]  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # type: ignore[import-not-found]  # noqa: E402

METRICS = {"hit@20": "hr@20", "mrr@20": "mrr@20", "ndcg@20": "ndcg@20"}


def _config(model: str, workdir: Path, files: list[str], epochs: int, patience: int, seed: int) -> Any:
    settings = {
        "data_path": str(workdir),
        "benchmark_filename": files,
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": 50,
        # RecBole's default of 2048 gives the small splits here a handful of updates per epoch
        "train_batch_size": 256,
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "eval_args": {"order": "TO", "mode": "full"},
        "metrics": ["Hit", "MRR", "NDCG"],
        "topk": [20],
        "valid_metric": "MRR@20",
        "epochs": epochs,
        "stopping_step": patience,
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "show_progress": False,
        "checkpoint_dir": str(workdir / "checkpoints"),
        "state": "ERROR",
    }
    return Config(model=model, dataset="split", config_dict=settings)


def _run(model_name: str, config: Any, validate: bool) -> tuple[Any, dict[str, float], int]:
    """Fit `model_name` on the config's first file; with `validate`, stop early on the second. Returns the
    trainer, the test figures in % and the best epoch (1-based)."""
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train_data, valid_data if validate else None, saved=validate, show_progress=False)
    best_epoch = config["epochs"]
    if validate:
        best_epoch = int(torch.load(trainer.saved_model_file, map_location="cpu")["epoch"]) + 1
    result = trainer.evaluate(test_data, load_best_model=validate, show_progress=False)
    figures = {ours: round(100 * float(result[theirs]), 2) for theirs, ours in METRICS.items()}
    return trainer, figures, best_epoch


def run_model(model_name: str, workdir: Path, epochs: int, patience: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    selection = _config(model_name, workdir, ["fit", "valid", "test"], epochs, patience, seed)
    _, _, best_epoch = _run(model_name, selection, validate=True)
    refit = _config(model_name, workdir, ["train", "valid", "test"], best_epoch, patience, seed)
    _, figures, _ = _run(model_name, refit, validate=False)
    return {**figures, "epochs": best_epoch, "train_seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--models", nargs="+", default=["GRU4Rec", "SASRec", "NARM", "SRGNN"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    # one intra-op thread: on this busy 2-core machine two made torch spin-wait (docs/models.md)
    torch.set_num_threads(1)
    results = {}
    for name in args.models:
        try:
            results[name] = run_model(name, args.workdir, args.epochs, args.patience, args.seed)
        except Exception as exc:  # one peer model failing must not lose the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"model": name, **results[name]}), flush=True)  # each as it finishes
    print(json.dumps({"models": results}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
