"""The search ranker: two small MLPs over a candidate's features (search/candidates.py), exported as one graph.

* `relevance`: the candidate's predicted rating on the labels' scale (1 irrelevant .. 3 exact), fitted with
  squared error on the judged products (RMSE is the competition's measure);
* `judged`: the probability that the candidate is one a shopper would be shown and asked about at all, fitted
  with log loss on the judged products (1) against the other retrieved candidates (0). Graded labels only
  exist for products that looked plausible for the query, so `relevance` alone cannot tell those from the
  retrieved rest: trained on judged products only, it ordered the whole candidate list worse than the fusion
  it reranks (docs/search.md).

The answer is ordered by `score` = P(judged) × (relevance − 1): the expected gain over an irrelevant product.
The features' mean and spread (of the training rows) are baked into the graph, and relevance is clipped to the
labels' range, so the ONNX file (`ranker.onnx`, input `features` [N, F], outputs `relevance` and `score` [N])
needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamrec.training.train import seed_everything


@dataclass(frozen=True)
class RankerConfig:
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 4  # epochs without a better validation loss
    valid_share: float = 0.1  # of the training terms, held out to stop on
    low: float = 1.0  # the labels' range
    high: float = 3.0
    seed: int = 0


def _mlp(n_features: int, cfg: RankerConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(cfg.layers):
        layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
        width = cfg.hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class RankerNet(nn.Module):
    """features [N, F] -> (relevance [N], score [N])."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_features: int, cfg: RankerConfig, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        self.relevance_net = _mlp(n_features, cfg)
        self.judged_net = _mlp(n_features, cfg)
        self.low, self.high = cfg.low, cfg.high
        self.centre = (cfg.low + cfg.high) / 2

    def relevance(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.scale
        return (self.relevance_net(x).squeeze(-1) + self.centre).clamp(self.low, self.high)

    def judged_logit(self, features: torch.Tensor) -> torch.Tensor:
        return self.judged_net((features - self.mean) / self.scale).squeeze(-1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        relevance = self.relevance(features)
        return relevance, torch.sigmoid(self.judged_logit(features)) * (relevance - self.low)


def fit_ranker(
    features: np.ndarray,
    relevance: np.ndarray,
    judged: np.ndarray,
    groups: np.ndarray,
    cfg: RankerConfig = RankerConfig(),
) -> RankerNet:
    """Fit on candidate rows grouped by query (`groups`): `judged` marks the rows with a rating (`relevance`,
    ignored elsewhere). A share of the groups is held out to choose each head's epoch."""
    seed_everything(cfg.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(cfg.seed)
    unique = np.unique(groups)
    held = rng.choice(unique, size=max(1, int(len(unique) * cfg.valid_share)), replace=False)
    valid = np.isin(groups, held)
    mean, scale = features[~valid].mean(0), features[~valid].std(0)
    model = RankerNet(features.shape[1], cfg, mean, np.where(scale > 1e-6, scale, 1.0))
    x = torch.from_numpy(features.astype(np.float32))
    rated = judged.astype(bool)

    def squared(rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.mean((model.relevance(rows) - target) ** 2)

    def log_loss(rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(model.judged_logit(rows), target)

    y_relevance = torch.from_numpy(relevance.astype(np.float32))
    y_judged = torch.from_numpy(judged.astype(np.float32))
    _train(model.relevance_net, squared, x, y_relevance, rated & ~valid, rated & valid, cfg, rng)
    _train(model.judged_net, log_loss, x, y_judged, ~valid, valid, cfg, rng)
    return model.eval()


def _train(
    head: nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    fit_rows: np.ndarray,
    valid_rows: np.ndarray,
    cfg: RankerConfig,
    rng: np.random.Generator,
) -> None:
    """Adam on `head` with early stopping on the held-out rows' loss; keeps the best epoch's weights."""
    optimiser = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    fit_index, valid_index = np.flatnonzero(fit_rows), torch.from_numpy(np.flatnonzero(valid_rows))
    best, best_state, since = np.inf, None, 0
    for _ in range(cfg.epochs):
        head.train()
        order = torch.from_numpy(rng.permutation(fit_index))
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            value = loss(x[batch], y[batch])
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
        head.eval()
        with torch.no_grad():
            held = float(loss(x[valid_index], y[valid_index]))
        if held < best - 1e-5:
            best, since = held, 0
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)


def predict(model: RankerNet, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(relevance, score) of each row."""
    with torch.no_grad():
        relevance, score = model(torch.from_numpy(np.asarray(features, dtype=np.float32)))
    return relevance.numpy(), score.numpy()


def export_ranker(model: RankerNet, n_features: int, path: Path) -> Path:
    """The ranker as ONNX: `features` [N, F] float32 -> `relevance` [N], `score` [N]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, n_features)
    torch.onnx.export(
        model.eval(),
        (example,),
        str(path),
        input_names=["features"],
        output_names=["relevance", "score"],
        dynamic_axes={"features": {0: "n"}, "relevance": {0: "n"}, "score": {0: "n"}},
        dynamo=False,
    )
    return path
