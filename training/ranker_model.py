"""The ranker network (normalisation + MLP), its listwise loss and fitting loop, and its ONNX export.

The network maps one candidate's features [.., F] to one score; normalisation (mean and scale measured on the
training candidates) is a pair of buffers inside it, so the exported graph takes raw features. The loss is the
softmax cross-entropy of the true next item against the other candidates of its prefix.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from streamrec.errors import DataError
from streamrec.features.ranker_inputs import CATEGORY, FEATURES, ITEM_BLOCK, PRICE, RETRIEVAL, SESSION
from streamrec.training.metrics import mrr, summarize
from streamrec.training.ranker_features import RankerData

Log = Callable[[str], None]
MISS = 1_000_000_000  # the rank of a target that is not among the candidates: beyond any cut-off
ONNX_OPSET = 18


@dataclass(frozen=True)
class RankerConfig:
    """Every setting of the ranker and its training, with its default."""

    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 30  # at most; early stopping on the holdout's MRR@20 picks the count
    patience: int = 3
    lr: float = 3e-3
    weight_decay: float = 1e-5
    batch_prefixes: int = 128
    holdout: float = 0.2  # last share of validation sessions (by time) used to choose the epoch count
    candidates: str = "auto"  # refit | published | auto (= refit when the version has its checkpoint)
    fit_model: str = ""  # refit: reuse this ONNX file if it exists, else save the refitted model there
    ablate: tuple[str, ...] = ()  # feature groups (ABLATION_GROUPS) or names the ranker must ignore
    seed: int = 0
    threads: int = 1  # the MLP is tiny; more threads only contend on a shared machine


ABLATION_GROUPS = {
    "retrieval": RETRIEVAL,
    "stream": ITEM_BLOCK,
    "session": SESSION,
    "category": CATEGORY,
    "price": PRICE,
}


def ignored_columns(ablate: tuple[str, ...]) -> list[int]:
    """Columns of FEATURES named by `ablate` (groups or single features)."""
    names = {n for a in ablate for n in ABLATION_GROUPS.get(a, (a,))}
    unknown = names - set(FEATURES)
    if unknown:
        raise DataError(f"unknown features to ablate: {sorted(unknown)}; groups: {sorted(ABLATION_GROUPS)}")
    return [i for i, name in enumerate(FEATURES) if name in names]


class RankerMLP(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_features: int, hidden: Sequence[int], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(1.0 / std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) * self.scale).squeeze(-1)


def normaliser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature over all candidates; a constant feature gets std 1 (left as is)."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def ranks(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1 + candidates scored strictly higher than the target (metrics.py's convention); MISS where absent."""
    rows = np.arange(len(target))
    mine = scores[rows, np.maximum(target, 0)]
    out = 1 + (scores > mine[:, None]).sum(axis=1)
    return np.where(target >= 0, out, MISS)


def model_scores(model: nn.Module, data: RankerData, batch: int = 512) -> np.ndarray:
    model.eval()
    out = np.empty(data.features.shape[:2], dtype=np.float32)
    with torch.no_grad():
        for begin in range(0, len(out), batch):
            out[begin : begin + batch] = model(torch.from_numpy(data.features[begin : begin + batch])).numpy()
    return out


def fit_ranker(train: RankerData, cfg: RankerConfig, holdout: RankerData | None, log: Log) -> tuple[RankerMLP, int]:
    """Adam on the listwise loss over prefixes whose target is a candidate; with `holdout`, keep the epoch of best
    holdout MRR@20 and stop after `patience` epochs without one. Returns the model and its epoch count."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    rows = np.flatnonzero(train.target >= 0)
    model = RankerMLP(train.features.shape[-1], cfg.hidden, *normaliser(train.features[rows]))
    # an ablated feature is multiplied by zero inside the graph, so the published ranker ignores it online too
    model.scale[ignored_columns(cfg.ablate)] = 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total = 0.0
        order = rng.permutation(rows)
        for begin in range(0, len(order), cfg.batch_prefixes):
            idx = order[begin : begin + cfg.batch_prefixes]
            logits = model(torch.from_numpy(train.features[idx]))
            loss = F.cross_entropy(logits, torch.from_numpy(train.target[idx]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if holdout is None:
            best_epoch = epoch
            continue
        score = mrr(ranks(model_scores(model, holdout), holdout.target))
        log(f"ranker epoch {epoch}: loss {total / max(len(rows), 1):.4f} holdout mrr@20 {100 * score:.2f}")
        if score > best:
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), best_epoch


def fit_selected(data: RankerData, cfg: RankerConfig, log: Log) -> tuple[RankerMLP, dict[str, Any]]:
    """Choose the epoch count on the last `holdout` share of sessions, then refit on all prefixes for it."""
    start = time.perf_counter()
    sessions = np.unique(data.session_index)
    cut = sessions[int(len(sessions) * (1 - cfg.holdout))]  # sessions are ordered by time: the last ones
    early = data.take(np.flatnonzero(data.session_index < cut))
    late = data.take(np.flatnonzero(data.session_index >= cut))
    model, epochs = fit_ranker(early, cfg, late, log)
    holdout = {
        "retrieval": summarize(ranks(late.retrieval_scores, late.target)),
        "ranked": summarize(ranks(model_scores(model, late), late.target)),
    }
    log(f"holdout: retrieval {holdout['retrieval']} -> ranked {holdout['ranked']}; refitting for {epochs} epochs")
    final, _ = fit_ranker(data, replace(cfg, epochs=epochs), None, log)
    return final, {"epochs": epochs, "holdout": holdout, "train_seconds": round(time.perf_counter() - start, 1)}


def export_ranker(model: RankerMLP, path: Path) -> Path:
    """ranker.onnx: input `features` float32 [N, F], output `scores` float32 [N], N dynamic."""
    example = torch.zeros(2, int(model.mean.shape[0]))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            input_names=["features"],
            output_names=["scores"],
            dynamic_axes={"features": {0: "n"}, "scores": {0: "n"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def onnx_scores(path: Path, data: RankerData, chunk: int = 256) -> np.ndarray:
    """The exported ranker's scores [P, K] through ONNX Runtime (what the scorer runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    p, k, f = data.features.shape
    out = np.empty((p, k), dtype=np.float32)
    for begin in range(0, p, chunk):
        block = data.features[begin : begin + chunk].reshape(-1, f)
        out[begin : begin + chunk] = session.run(["scores"], {"features": block})[0].reshape(-1, k)
    return out
