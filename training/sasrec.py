"""SASRec-style session Transformer: causal self-attention over a session's items, tied scoring head.

Differences from the SASRec paper, each because sessions are short and recency is what matters:
- positions enter as a learned attention bias per head and distance (query minus key, as in T5), so recency
  is measured from the item being answered for, and every prefix of a session trains in one pass;
- training uses full cross-entropy over all items instead of sampled negatives;
- an optional `RepeatBias` adds a copy path for items already in the session.
Attention is written with plain matmuls so the TorchScript ONNX exporter gives dynamic batch and length axes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from streamrec.training.next_item import NextItemScoring
from streamrec.training.repeat import RepeatBias


@dataclass(frozen=True)
class SASRecArgs:
    """Everything needed to rebuild the model; stored in checkpoints and in the artifact manifest."""

    n_items: int  # vocabulary size including padding index 0
    embedding_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    repeat_bias: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm Transformer block: causal multi-head self-attention, then a position-wise feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
        """x [B, T, D]; mask [B, 1, T, T] True where a query may attend to a key; relative [1, H, T, T] bias."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads) + relative
        weights = torch.softmax(logits.masked_fill(~mask, -1e4), dim=-1)
        attended = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.dropout(self.out(attended))
        return x + self.dropout(self.ff(self.norm2(x)))


class SASRec(NextItemScoring, nn.Module):
    """`forward(items, lengths)` gives scores over all items after position lengths-1."""

    def __init__(self, args: SASRecArgs) -> None:
        super().__init__()
        self.args = args
        self.embedding = nn.Embedding(args.n_items, args.embedding_dim, padding_idx=0)
        self.relative = nn.Embedding(args.max_len, args.num_heads)  # attention bias by distance, per head
        self.blocks = nn.ModuleList(
            Block(args.embedding_dim, args.num_heads, args.dropout) for _ in range(args.num_layers)
        )
        self.norm = nn.LayerNorm(args.embedding_dim)
        self.dropout = nn.Dropout(args.dropout)
        self.bias = nn.Parameter(torch.zeros(args.n_items))
        self.repeat = RepeatBias(args.max_len) if args.repeat_bias else None
        nn.init.normal_(self.embedding.weight, std=0.05)
        nn.init.zeros_(self.relative.weight)

    def encode_all(self, items: torch.Tensor) -> torch.Tensor:
        """States after every position, [B, T, D]; causal, so right padding never changes a valid position."""
        positions = torch.arange(items.shape[1], device=items.device)
        distance = positions.unsqueeze(-1) - positions.unsqueeze(0)  # [T, T], query minus key
        relative = self.relative(distance.clamp(min=0, max=self.args.max_len - 1)).permute(2, 0, 1).unsqueeze(0)
        mask = ((distance >= 0).unsqueeze(0) & (items > 0).unsqueeze(1)).unsqueeze(1)  # [B, 1, T, T]
        x = self.dropout(self.embedding(items) * math.sqrt(self.args.embedding_dim))
        for block in self.blocks:
            x = block(x, mask, relative)
        return self.norm(x)

    def score(self, states: torch.Tensor) -> torch.Tensor:
        return self.dropout(states) @ self.embedding.weight.T + self.bias
