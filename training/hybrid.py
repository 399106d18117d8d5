"""A servable hybrid of session kNN and a neural session model: a weighted blend of their normalised scores.

Each part's scores are scaled so that its best item scores 1 (kNN: divided by the row's maximum; the neural
model: softmax, divided by its maximum, i.e. exp(logit - max logit)), then blended as `weight * knn + (1 -
weight) * neural`, the weighted hybrid of the session-based literature. `weight` is chosen on the validation
split from models fitted on the fitting sessions only (`tune_weight`); the published graph holds the parts
refitted on all training sessions, in one ONNX file, so the scorer serves it like any other version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from streamrec.training.baselines import VSKNN
from streamrec.training.metrics import Prefixes, RankResult, all_prefixes, rank_prefixes, summarize
from streamrec.training.protocol import Split
from streamrec.training.train import torch_scorer

WEIGHTS = tuple(round(w / 10, 1) for w in range(11))  # 0 = the neural model alone, 1 = kNN alone
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
BATCH = 256


class HybridGraph(nn.Module):
    """forward(items, lengths) -> blended scores [B, n_items] (float64), item 0 (padding) scored 0."""

    padding: torch.Tensor

    def __init__(self, knn: nn.Module, neural: nn.Module, weight: float, n_items: int) -> None:
        super().__init__()
        self.knn, self.neural, self.weight = knn, neural, float(weight)
        self.register_buffer("padding", torch.arange(n_items) == 0)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        knn = self.knn(items, lengths).masked_fill(self.padding, 0.0)
        knn = knn / knn.amax(1, keepdim=True).clamp(min=1e-300)
        logits = self.neural(items, lengths).double().masked_fill(self.padding, float("-inf"))
        neural = torch.exp(logits - logits.amax(1, keepdim=True))
        return self.weight * knn + (1.0 - self.weight) * neural


def blend(knn: np.ndarray, neural: np.ndarray, weight: float) -> np.ndarray:
    """The graph's blend on score matrices (numpy), for tuning: the same normalisation as HybridGraph."""
    knn = knn.astype(np.float64).copy()
    knn[:, 0] = 0.0
    knn /= np.maximum(knn.max(1, keepdims=True), 1e-300)
    logits = neural.astype(np.float64).copy()
    logits[:, 0] = -np.inf
    return weight * knn + (1.0 - weight) * np.exp(logits - logits.max(1, keepdims=True))


def tune_weight(knn: Scorer, neural: nn.Module, max_seq_len: int, valid: Prefixes) -> tuple[float, dict[str, float]]:
    """The weight of WEIGHTS with the best validation MRR@20 (HR@20 breaks ties), and its validation figures.

    `knn` and `neural` must be fitted on the fitting sessions: the validation sessions are then unseen.
    """
    neural_score = torch_scorer(neural, max_seq_len)
    ranks: dict[float, list[np.ndarray]] = {w: [] for w in WEIGHTS}
    for start in range(0, len(valid.items), BATCH):
        rows = valid.items[start : start + BATCH]
        items = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
        for r, row in enumerate(rows):
            items[r, : len(row)] = row
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        targets = valid.targets[start : start + BATCH]
        knn_scores, neural_scores = knn(items, lengths), neural_score(items, lengths)
        for weight in WEIGHTS:
            scores = blend(knn_scores, neural_scores, weight)
            target = scores[np.arange(len(rows)), targets][:, None]
            ranks[weight].append(1 + (scores > target).sum(1))
    figures = {w: summarize(np.concatenate(r)) for w, r in ranks.items()}
    best = max(WEIGHTS, key=lambda w: (figures[w]["mrr@20"], figures[w]["hr@20"]))
    return best, figures[best]


def blended_scorer(knn: Scorer, neural: nn.Module, max_seq_len: int, weight: float) -> Scorer:
    """A metrics.ScoreFn of the blend, for test figures computed as the graph computes them."""
    neural_score = torch_scorer(neural, max_seq_len)

    def score(items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return blend(knn(items, lengths), neural_score(items, lengths), weight)

    return score


@dataclass(frozen=True)
class FittedBlend:
    weight: float
    valid: dict[str, float]  # the chosen weight's validation figures
    knn: VSKNN  # fitted on all training sessions
    test: RankResult  # of the blend of the parts refitted on all training sessions


def fit_blend(split: Split, trained: Any, max_seq_len: int) -> FittedBlend:
    """The blend of V-SKNN and a neural run (train.Trained): the weight chosen on validation from the parts fitted
    on the fitting sessions, the test ranks from the parts refitted on all training sessions."""
    n_items = len(split.vocab)
    on_fit = VSKNN().fit(split.fit, n_items)
    weight, valid = tune_weight(on_fit.score, trained.fit_model, max_seq_len, all_prefixes(split.valid))
    knn = VSKNN().fit(split.train, n_items)
    test = rank_prefixes(blended_scorer(knn.score, trained.model, max_seq_len, weight), all_prefixes(split.test))
    return FittedBlend(weight, valid, knn, test)
