"""Baselines for next-item prediction: POP, S-POP, item-KNN (co-occurrence) and V-SKNN (session kNN).

Each has `fit(sessions, n_items, kinds)` on encoded training sessions (oldest first), with each event's kind
(sequences.EVENT_KINDS) where the data has them, and `score(items, lengths)` giving scores [B, n_items] for
right-padded prefixes, the metrics.ScoreFn shape. Every baseline adds a tiny
popularity term so that items it has no opinion on are ordered by popularity rather than tied at zero
(ranks count strictly higher scores, so ties would flatter a sparse scorer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TIEBREAK = 1e-6
PLAIN_WEIGHTS = (1.0, 1.0, 1.0)  # a type weighting (views and clicks, carts, purchases) that changes nothing


def _popularity(sessions: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    counts = np.bincount(np.concatenate(list(sessions)), minlength=n_items).astype(np.float64)
    counts[0] = 0.0
    return counts / max(counts.max(), 1.0)


class Pop:
    """The most clicked items of the training data, the same for every session."""

    name = "pop"

    def fit(self, sessions: Sequence[np.ndarray], n_items: int, kinds: Sequence[np.ndarray] | None = None) -> Pop:
        self.pop = _popularity(sessions, n_items)
        return self

    def score(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop, (len(items), len(self.pop)))


class SessionPop(Pop):
    """Items of the current session by how often they occur in it, then global popularity."""

    name = "s-pop"

    def score(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        scores = np.tile(self.pop * TIEBREAK, (len(items), 1))
        rows = np.repeat(np.arange(len(items)), items.shape[1])
        np.add.at(scores, (rows, items.ravel()), 1.0)
        scores[:, 0] = 0.0
        return scores


@dataclass
class _Incidence:
    """Sessions as item sets in CSR form, each item's sessions (ascending, i.e. oldest first), and each (session,
    item) pair's strongest event kind (sequences.EVENT_KINDS: 0 where the data has no kinds)."""

    session_ptr: np.ndarray
    session_items: np.ndarray
    session_kinds: np.ndarray
    item_ptr: np.ndarray
    item_sessions: np.ndarray

    @classmethod
    def build(
        cls, sessions: Sequence[np.ndarray], n_items: int, kinds: Sequence[np.ndarray] | None = None
    ) -> _Incidence:
        sets = [np.unique(s) for s in sessions]
        session_ptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
        session_items = np.concatenate(sets)
        session_kinds = np.zeros(len(session_items), dtype=np.int8)
        for row, session_kind in enumerate(kinds or ()):
            start = session_ptr[row]
            at = start + np.searchsorted(sets[row], sessions[row])
            np.maximum.at(session_kinds, at, session_kind.astype(np.int8))
        owner = np.repeat(np.arange(len(sets)), np.diff(session_ptr))
        order = np.lexsort((owner, session_items))
        item_ptr = np.concatenate([[0], np.cumsum(np.bincount(session_items, minlength=n_items))])
        return cls(session_ptr, session_items, session_kinds, item_ptr, owner[order])

    def items_of(self, session: int) -> np.ndarray:
        return self.session_items[self.session_ptr[session] : self.session_ptr[session + 1]]

    def sessions_of(self, item: int) -> np.ndarray:
        return self.item_sessions[self.item_ptr[item] : self.item_ptr[item + 1]]


class ItemKNN(Pop):
    """Items that co-occur in sessions with the prefix's last item: cosine-style similarity on session counts,
    co(i, j) / ((supp_i + lambda)^alpha * (supp_j + lambda)^(1 - alpha)), as session-rec's ItemKNN."""

    name = "item-knn"

    def __init__(self, n_sims: int = 100, lmbd: float = 20.0, alpha: float = 0.5) -> None:
        self.n_sims, self.lmbd, self.alpha = n_sims, lmbd, alpha

    def fit(self, sessions: Sequence[np.ndarray], n_items: int, kinds: Sequence[np.ndarray] | None = None) -> ItemKNN:
        super().fit(sessions, n_items)
        inc = _Incidence.build(sessions, n_items)
        support = np.diff(inc.item_ptr).astype(np.float64)
        self.neighbours = np.zeros((n_items, self.n_sims), dtype=np.int64)
        self.sims = np.zeros((n_items, self.n_sims))
        for item in range(1, n_items):
            co = np.bincount(
                np.concatenate([inc.items_of(s) for s in inc.sessions_of(item)] or [np.zeros(0, np.int64)]),
                minlength=n_items,
            ).astype(np.float64)
            co[[0, item]] = 0.0
            norm = (support[item] + self.lmbd) ** self.alpha * (support + self.lmbd) ** (1 - self.alpha)
            sim = co / np.where(norm > 0, norm, 1.0)  # zero only where co is zero too (an unseen item)
            top = np.argsort(-sim, kind="stable")[: self.n_sims]
            self.neighbours[item, : len(top)], self.sims[item, : len(top)] = top, sim[top]
        return self

    def score(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        scores = np.tile(self.pop * TIEBREAK, (len(items), 1))
        last = items[np.arange(len(items)), lengths - 1]
        rows = np.arange(len(items))[:, None]
        scores[rows, self.neighbours[last]] += self.sims[last]
        scores[:, 0] = 0.0
        return scores


class VSKNN(Pop):
    """Vector-multiplication session kNN (Ludewig & Jannach): neighbours among the `sample_size` most recent
    sessions sharing an item with the prefix, similarity weighted by item position (later items count more),
    item scores decayed by how far back the prefix's most recent shared item lies, optionally IDF-weighted.

    `type_weights` (views and clicks, carts, purchases) multiply a neighbour's item by the strongest thing its
    session did with it, where `fit` is given the events' kinds; all ones is the plain V-SKNN."""

    name = "v-sknn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        idf_weight: float = 1.0,
        type_weights: tuple[float, float, float] = PLAIN_WEIGHTS,
    ) -> None:
        self.k, self.sample_size, self.idf_weight = k, sample_size, idf_weight
        self.type_weights = tuple(float(w) for w in type_weights)

    def fit(self, sessions: Sequence[np.ndarray], n_items: int, kinds: Sequence[np.ndarray] | None = None) -> VSKNN:
        super().fit(sessions, n_items)
        self.inc = _Incidence.build(sessions, n_items, kinds)
        self.item_weight = np.asarray(self.type_weights, dtype=np.float64)[self.inc.session_kinds]
        support = np.maximum(np.diff(self.inc.item_ptr), 1)
        self.idf = np.log(len(sessions) / support)
        self.n_items = n_items
        return self

    def _session_scores(self, prefix: np.ndarray) -> np.ndarray:
        scores = self.pop * TIEBREAK
        # position weight i/n of each distinct item; a repeated item keeps its latest position. Summed as whole
        # positions and divided once, so that equal similarities are equal exactly and their order (the older
        # session first) does not hang on rounding: training/knn_graph.py ranks the same way.
        weight = {int(item): pos + 1 for pos, item in enumerate(prefix)}
        candidates = np.unique(np.concatenate([self.inc.sessions_of(i) for i in weight]))
        candidates = candidates[-self.sample_size :]  # sessions are stored oldest first: these are the most recent
        if not len(candidates):
            return scores
        positions = np.zeros(len(candidates), dtype=np.int64)
        recency = np.full(len(candidates), np.inf)  # steps back to the most recent shared item
        for step, item in enumerate(prefix[::-1], start=1):
            shared = np.isin(candidates, self.inc.sessions_of(int(item)), assume_unique=True)
            recency[shared] = np.minimum(recency[shared], step)
        for item, w in weight.items():
            positions[np.isin(candidates, self.inc.sessions_of(item), assume_unique=True)] += w
        top = np.argsort(-positions, kind="stable")[: self.k]
        top = top[positions[top] > 0]
        similarity = positions / (len(prefix) * len(weight))
        scores = scores.copy()
        for neighbour, sim, steps in zip(candidates[top], similarity[top], recency[top], strict=True):
            start, end = self.inc.session_ptr[neighbour], self.inc.session_ptr[neighbour + 1]
            items = self.inc.session_items[start:end]
            scores[items] += sim / steps * (1.0 + self.idf_weight * self.idf[items]) * self.item_weight[start:end]
        return scores

    def score(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = np.stack([self._session_scores(row[:n]) for row, n in zip(items, lengths, strict=True)])
        out[:, 0] = 0.0
        return out


BASELINES = {"pop": Pop, "s-pop": SessionPop, "item-knn": ItemKNN, "v-sknn": VSKNN}
