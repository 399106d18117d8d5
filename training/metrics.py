"""Next-item ranking metrics: the rank of each target under full ranking, then HR@k, MRR@k and NDCG@k.

The one evaluation implementation every model and baseline goes through. A target's rank is 1 + the number
of items scored strictly higher (the session-rec convention); the padding index 0 never competes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.training.sequences import pad_right

# scores [B, n_items] for prefixes given as (items [B, T] right-padded with 0, lengths [B])
ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scores [B, n_items], targets [B] -> 1-based ranks [B]; column 0 (padding) is ignored."""
    scores = np.asarray(scores)
    target_scores = scores[np.arange(len(targets)), targets]
    higher = scores[:, 1:] > target_scores[:, None]
    return 1 + higher.sum(axis=1)


def hit_rate(ranks: np.ndarray, k: int = 20) -> float:
    return float(np.mean(ranks <= k)) if len(ranks) else 0.0


def mrr(ranks: np.ndarray, k: int = 20) -> float:
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0))) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int = 20) -> float:
    """One relevant item per prefix, so the ideal DCG is 1 and NDCG is 1/log2(rank+1) inside the top k."""
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0))) if len(ranks) else 0.0


def mrr_standard_error(ranks: np.ndarray, k: int = 20) -> float:
    """The standard error of MRR@k as a mean over prefixes: how far apart two models may be by chance alone."""
    if len(ranks) < 2:
        return 0.0
    reciprocal = np.where(ranks <= k, 1.0 / ranks, 0.0)
    return float(reciprocal.std(ddof=1) / np.sqrt(len(ranks)))


def summarize(ranks: np.ndarray, k: int = 20) -> dict[str, float]:
    """Metrics in percent, rounded to 2 decimals, under the names the CLI and the manifest use."""
    return {
        f"hr@{k}": round(100 * hit_rate(ranks, k), 2),
        f"mrr@{k}": round(100 * mrr(ranks, k), 2),
        f"ndcg@{k}": round(100 * ndcg(ranks, k), 2),
        f"mrr@{k}_se": round(100 * mrr_standard_error(ranks, k), 2),
    }


@dataclass(frozen=True)
class Prefixes:
    """Every prefix of every session with the item that followed it."""

    items: list[np.ndarray]
    targets: np.ndarray
    session_index: np.ndarray  # which session each prefix came from

    def __len__(self) -> int:
        return len(self.targets)


def all_prefixes(seqs: Sequence[np.ndarray]) -> Prefixes:
    items: list[np.ndarray] = []
    targets: list[int] = []
    owner: list[int] = []
    for s_idx, seq in enumerate(seqs):
        for cut in range(1, len(seq)):
            items.append(seq[:cut])
            targets.append(int(seq[cut]))
            owner.append(s_idx)
    return Prefixes(items, np.array(targets, dtype=np.int64), np.array(owner, dtype=np.int64))


@dataclass(frozen=True)
class RankResult:
    ranks: np.ndarray
    seconds: float

    def ms_per_prefix(self) -> float:
        return 1000.0 * self.seconds / max(len(self.ranks), 1)


def rank_prefixes(score: ScoreFn, prefixes: Prefixes, batch_size: int = 256) -> RankResult:
    """Score prefixes in batches (sorted by length so padding stays small) and rank each target."""
    order = np.argsort([len(p) for p in prefixes.items], kind="stable")
    ranks = np.empty(len(prefixes), dtype=np.int64)
    start = time.perf_counter()
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        items, lengths = pad_right([prefixes.items[i] for i in idx])
        ranks[idx] = target_ranks(score(items, lengths), prefixes.targets[idx])
    return RankResult(ranks, time.perf_counter() - start)
