"""V-SKNN as a torch graph the scorer can serve: the fitted baseline's neighbourhoods in tensors, exported to ONNX.

training/baselines.py's VSKNN walks Python sets per prefix; this computes the same scores for a padded batch
with gathers and scatters only, so it exports to the scorer's top-k graph (training/export.py) like the neural
models and runs in ONNX Runtime with no new runtime. Its size grows with items × `sample_size` and sessions ×
their longest item set, not items × sessions:

* `postings[i]`: the `sample_size` most recent training sessions holding item i (padded with a session of no
  items). V-SKNN's neighbours are the `sample_size` most recent sessions sharing any item with the prefix; each of
  those is among the most recent `sample_size` of every item it shares, so these lists hold all of them, with
  every shared item, and the similarity of each is complete.
* `session_items[s]`: the distinct items of session s (padded with item 0, masked at the end), and
  `session_weights[s]` the type weight of each (the baseline's `type_weights` of the strongest event kind).

Neighbours are chosen on whole-number similarities (sums of positions, exact in float64) with ties broken as
the baseline breaks them, the older session first, so the graph ranks as the baseline does
(tests/training/test_knn_graph.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from streamrec.training.baselines import TIEBREAK, VSKNN

# subtracted per session index so that equal similarities rank the older session first, as the baseline's stable
# sort does; whole-number similarities differ by 1 at least, and this stays below that up to 1e8 sessions
TIE_STEP = 1e-9


def knn_args(knn: VSKNN) -> dict[str, Any]:
    """A fitted V-SKNN's settings, as a version's model_args records them."""
    return {
        "k": knn.k,
        "sample_size": knn.sample_size,
        "idf_weight": knn.idf_weight,
        "type_weights": list(knn.type_weights),
    }


class SessionKNNGraph(nn.Module):
    """forward(items [B, T] right-padded with 0, lengths [B]) -> scores [B, n_items] (float64) of a fitted VSKNN."""

    postings: torch.Tensor
    session_items: torch.Tensor
    session_weights: torch.Tensor
    item_factor: torch.Tensor
    prior: torch.Tensor
    tie: torch.Tensor
    no_session: torch.Tensor

    def __init__(self, knn: VSKNN) -> None:
        super().__init__()
        inc = knn.inc
        n_sessions = len(inc.session_ptr) - 1
        self.n_columns = n_sessions + 1  # the sessions and one of no items, the postings' padding
        self.k = knn.k
        self.sample_size = knn.sample_size
        self.n_items = knn.n_items
        postings = np.full((knn.n_items, knn.sample_size), n_sessions, dtype=np.int64)
        for item in range(knn.n_items):
            recent = inc.sessions_of(item)[-knn.sample_size :]
            postings[item, : len(recent)] = recent
        widths = np.diff(inc.session_ptr)
        session_items = np.zeros((n_sessions + 1, max(int(widths.max(initial=1)), 1)), dtype=np.int64)
        session_weights = np.zeros(session_items.shape, dtype=np.float64)
        for session in range(n_sessions):
            start, end = inc.session_ptr[session], inc.session_ptr[session + 1]
            session_items[session, : end - start] = inc.session_items[start:end]
            session_weights[session, : end - start] = knn.item_weight[start:end]
        self.register_buffer("postings", torch.from_numpy(postings))
        self.register_buffer("session_items", torch.from_numpy(session_items))
        self.register_buffer("session_weights", torch.from_numpy(session_weights))
        self.register_buffer("item_factor", torch.from_numpy(1.0 + knn.idf_weight * knn.idf.astype(np.float64)))
        self.register_buffer("prior", torch.from_numpy((knn.pop * TIEBREAK).astype(np.float64)))
        self.register_buffer("tie", torch.arange(n_sessions + 1, dtype=torch.float64) * TIE_STEP)
        self.register_buffer("no_session", torch.arange(n_sessions + 1) == n_sessions)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, width = items.shape
        positions = torch.arange(width, device=items.device).unsqueeze(0)
        valid = positions < lengths.unsqueeze(1)
        # an item's weight is its latest position in the prefix (pos + 1) / length; earlier repeats weigh nothing
        later = torch.ones(width, width, dtype=torch.bool, device=items.device).triu(1)
        repeated_later = ((items.unsqueeze(2) == items.unsqueeze(1)) & later & valid.unsqueeze(1)).any(2)
        distinct = valid & ~repeated_later
        weight = torch.where(distinct, (positions + 1).double(), 0.0)  # the baseline's (pos + 1) / length, times length
        scale = lengths.unsqueeze(1).double() * distinct.sum(1, keepdim=True).clamp(min=1).double()

        sessions = self.postings[items].reshape(batch, -1)  # [B, T * sample_size]
        spread, n_columns = self.sample_size, self.n_columns
        similarity = torch.zeros(batch, n_columns, dtype=torch.float64, device=items.device)
        similarity = similarity.scatter_add(1, sessions, weight.repeat_interleave(spread, 1))
        steps = (lengths.unsqueeze(1) - positions).double()
        steps = torch.where(valid, steps, torch.inf).repeat_interleave(spread, 1)
        recency = torch.full((batch, n_columns), torch.inf, dtype=torch.float64, device=items.device)
        recency = recency.scatter_reduce(1, sessions, steps, reduce="amin")

        # the sample: the most recent `sample_size` sessions sharing an item (sessions are indexed oldest first)
        shared = (similarity > 0) & ~self.no_session
        newer_or_same = shared.sum(1, keepdim=True) - shared.long().cumsum(1) + shared.long()
        sampled = shared & (newer_or_same <= self.sample_size)
        ranked = torch.where(sampled, similarity - self.tie, -1.0)
        top, neighbours = torch.topk(ranked, min(self.k, n_columns), dim=1)
        chosen = top > 0
        neighbour_similarity = torch.where(chosen, similarity.gather(1, neighbours) / scale, 0.0)
        neighbour_weight = neighbour_similarity / torch.where(chosen, recency.gather(1, neighbours), 1.0)

        their_items = self.session_items[neighbours]  # [B, k, width of the widest session]
        their_weights = self.session_weights[neighbours]
        contribution = neighbour_weight.unsqueeze(2) * self.item_factor[their_items] * their_weights
        scores = self.prior.unsqueeze(0).repeat(batch, 1)
        scores = scores.scatter_add(1, their_items.reshape(batch, -1), contribution.reshape(batch, -1))
        return scores
