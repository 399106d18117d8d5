"""The prediction side shared by the session encoders: scores after the last item, or after every position.

A model provides `encode_all` (states after every position, [B, T, H]), `score` (states -> item scores) and
`repeat` (a RepeatBias or None); this mixin turns them into `forward`, which is what is exported to ONNX, and
`scores_all`, which training uses.
"""

from __future__ import annotations

import torch

from streamrec.training.repeat import RepeatBias


class NextItemScoring:
    repeat: RepeatBias | None

    def encode_all(self, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, states: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """items [B, T] right-padded with 0, lengths [B] >= 1 -> scores [B, n_items] after position lengths-1."""
        states = self.encode_all(items)
        last = states[torch.arange(items.shape[0], device=items.device), lengths - 1]
        scores = self.score(last)
        return self.repeat.last(scores, items, lengths) if self.repeat is not None else scores

    def scores_all(self, items: torch.Tensor) -> torch.Tensor:
        """Training on whole sessions: scores [B, T, N] after every position (each is its own session end)."""
        scores = self.score(self.encode_all(items))
        return self.repeat.all_positions(scores, items) if self.repeat is not None else scores
