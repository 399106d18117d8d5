"""The search ranker: a small MLP from a candidate's features (search/candidates.py) to its predicted relevance.

Trained on graded labels (1 irrelevant .. 3 exact) with squared error, so its output is a relevance on the
labels' scale (RMSE is the competition's measure) and sorting by it ranks. The features' mean and spread are
taken from the training rows and baked into the graph, and the output is clipped to the labels' range, so the
exported ONNX file (`ranker.onnx`, input `features` [N, F], output `relevance` [N]) needs nothing else.
"""

from __future__ import annotations

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
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 4  # epochs without a better validation RMSE
    valid_share: float = 0.1  # of the training terms, held out to stop on
    low: float = 1.0  # the labels' range
    high: float = 3.0
    seed: int = 0


class RankerNet(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_features: int, cfg: RankerConfig, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.low, self.high = cfg.low, cfg.high
        self.centre = (cfg.low + cfg.high) / 2

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.scale
        return (self.net(x).squeeze(-1) + self.centre).clamp(self.low, self.high)


def fit_ranker(
    features: np.ndarray, relevance: np.ndarray, groups: np.ndarray, cfg: RankerConfig = RankerConfig()
) -> RankerNet:
    """Fit on rows grouped by query (`groups`): a share of the groups is held out to choose the epoch."""
    seed_everything(cfg.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(cfg.seed)
    unique = np.unique(groups)
    held = set(rng.choice(unique, size=max(1, int(len(unique) * cfg.valid_share)), replace=False).tolist())
    valid = np.isin(groups, list(held))
    x_fit, y_fit = features[~valid], relevance[~valid]
    mean, scale = x_fit.mean(0), x_fit.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    model = RankerNet(features.shape[1], cfg, mean, scale)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xs, ys = torch.from_numpy(x_fit.astype(np.float32)), torch.from_numpy(y_fit.astype(np.float32))
    xv, yv = torch.from_numpy(features[valid].astype(np.float32)), torch.from_numpy(relevance[valid].astype(np.float32))
    best, best_state, since = np.inf, None, 0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xs)))
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = torch.mean((model(xs[batch]) - ys[batch]) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            rmse = float(torch.sqrt(torch.mean((model(xv) - yv) ** 2)))
        if rmse < best - 1e-5:
            best, since = rmse, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def predict(model: RankerNet, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(features, dtype=np.float32))).numpy()


def export_ranker(model: RankerNet, n_features: int, path: Path) -> Path:
    """The ranker as ONNX: `features` [N, F] float32 -> `relevance` [N]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, n_features)
    torch.onnx.export(
        model.eval(),
        (example,),
        str(path),
        input_names=["features"],
        output_names=["relevance"],
        dynamic_axes={"features": {0: "n"}, "relevance": {0: "n"}},
        dynamo=False,
    )
    return path
