"""GRU4Rec: a GRU over a session's items that scores every item of the vocabulary as the next one.

Index 0 of the vocabulary is padding. The output layer is *tied* to the input embedding (Hidasi's
"constrained embedding"): scores are the dot products of the final state, projected to the embedding
size when the sizes differ, with every item's embedding, plus a per-item bias. Tying halves the parameters
and lets rare items borrow what their input embedding learnt, which is what session data with long-tailed
item counts needs; it also matches the SASRec-style model, so both share one scoring head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from streamrec.training.next_item import NextItemScoring
from streamrec.training.repeat import RepeatBias


@dataclass(frozen=True)
class GRU4RecArgs:
    """Everything needed to rebuild the model; stored in checkpoints and in the artifact manifest."""

    n_items: int  # vocabulary size including padding index 0
    embedding_dim: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0  # on the embedding and on the final state
    repeat_bias: bool = False  # add training.repeat.RepeatBias (a copy path for items already in the session)
    max_len: int = 50  # the longest distance RepeatBias tells apart

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GRU4Rec(NextItemScoring, nn.Module):
    """Session encoder and tied scoring head; `forward(items, lengths)` gives scores over all items."""

    def __init__(self, args: GRU4RecArgs) -> None:
        super().__init__()
        self.args = args
        self.embedding = nn.Embedding(args.n_items, args.embedding_dim, padding_idx=0)
        self.gru = nn.GRU(args.embedding_dim, args.hidden_size, num_layers=args.num_layers, batch_first=True)
        self.dropout = nn.Dropout(args.dropout)
        self.project: nn.Module = (
            nn.Identity() if args.hidden_size == args.embedding_dim else nn.Linear(args.hidden_size, args.embedding_dim)
        )
        self.bias = nn.Parameter(torch.zeros(args.n_items))
        self.repeat = RepeatBias(args.max_len) if args.repeat_bias else None
        nn.init.normal_(self.embedding.weight, std=0.05)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def score(self, state: torch.Tensor) -> torch.Tensor:
        """States [..., hidden] -> scores [..., n_items] (index 0 is not masked here)."""
        return self.project(self.dropout(state)) @ self.embedding.weight.T + self.bias

    def encode_all(self, items: torch.Tensor) -> torch.Tensor:
        """States after every position, [B, T, hidden]. The GRU is causal, so padding to the right of a
        position cannot change the state at that position."""
        out, _ = self.gru(self.dropout(self.embedding(items)))
        return out

    def step(
        self, items: torch.Tensor, hidden: torch.Tensor | None, recent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One event per session lane, for session-parallel training: items [B], hidden [layers, B, H] or None,
        recent [B, R] the lane's last R items (right-aligned, 0 where none; used only with the repeat bias)."""
        out, hidden = self.gru(self.dropout(self.embedding(items)).unsqueeze(1), hidden)
        scores = self.score(out[:, 0])
        if self.repeat is not None:
            full = torch.full((recent.shape[0],), recent.shape[1], dtype=torch.long, device=recent.device)
            scores = self.repeat.last(scores, recent, full)
        return scores, hidden

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(self.args.num_layers, batch_size, self.args.hidden_size)
