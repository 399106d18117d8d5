"""The training loop for session models, and `train_session_model`: canonical events in, a published version out.

Every setting and its default is in `TrainConfig` below; the model itself lives in its own module.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from streamrec.events import CanonicalEvent
from streamrec.training.canonical import events_sha256
from streamrec.training.export import publish_model
from streamrec.training.metrics import Prefixes, all_prefixes, rank_prefixes, summarize
from streamrec.training.models import build_model
from streamrec.training.sequences import (
    Vocabulary,
    events_frame,
    padded_batches,
    popular_items,
    session_parallel_batches,
    session_sequences,
)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "gru4rec"  # gru4rec or sasrec
    embedding_dim: int = 64
    hidden_size: int = 64  # GRU4Rec only
    num_layers: int = 1
    num_heads: int = 2  # SASRec only
    dropout: float = 0.1
    repeat_bias: bool = False  # training.repeat.RepeatBias on top of the model's scores
    batching: str = "session-parallel"  # GRU4Rec's mini-batches; "padded" = whole sessions (SASRec always)
    epochs: int = 8
    batch_size: int = 32  # session-parallel lanes, or sessions per padded batch
    lr: float = 0.005
    weight_decay: float = 0.0
    max_seq_len: int = 50
    patience: int = 2  # epochs without a better validation MRR@20 before stopping
    # how much a transition into a cart or a purchase counts in the loss, against 1 for a view or click
    # (sequences.EVENT_KINDS), where the data has event types; 1 and 1 train as if it had none
    cart_weight: float = 1.0
    purchase_weight: float = 1.0
    seed: int = 0
    # one intra-op thread: the per-step ops are small, and with two threads on a busy 2-core machine
    # OpenMP's spin-waiting made a 9 s run take 208 s; one thread stays near its idle speed
    threads: int = 1
    amp: bool = False  # autocast: bf16 on CPU (AMX/AVX512-BF16 make it faster), bf16 or fp16 on CUDA
    device: str = "auto"  # auto = cuda when available, else cpu
    progress: bool = False  # tqdm bar per epoch

    def model_args(self, n_items: int) -> dict[str, Any]:
        common = {
            "n_items": n_items,
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "repeat_bias": self.repeat_bias,
        }
        if self.model == "gru4rec":
            return common | {"hidden_size": self.hidden_size, "max_len": self.max_seq_len}
        return common | {"num_heads": self.num_heads, "max_len": self.max_seq_len}


# The named models `streamrec train/evaluate --model` know. Chosen a priori and by validation MRR@20 on
# YooChoose 100k (never by test figures); `-repeat`/`-plain` variants are the ablations of the repeat bias.
_GRU4REC = TrainConfig(
    model="gru4rec", embedding_dim=100, hidden_size=100, dropout=0.2, lr=0.005, batch_size=32, epochs=10
)
_SASREC = TrainConfig(
    model="sasrec",
    embedding_dim=64,
    num_layers=2,
    num_heads=2,
    dropout=0.2,
    lr=0.002,
    batch_size=64,
    epochs=10,
    repeat_bias=True,
    amp=True,
)
MODEL_PRESETS: dict[str, TrainConfig] = {
    "gru4rec": _GRU4REC,
    "gru4rec-repeat": replace(_GRU4REC, repeat_bias=True),
    "sasrec": _SASREC,
    "sasrec-plain": replace(_SASREC, repeat_bias=False),
}


@dataclass
class History:
    """Per-epoch training loss and validation metrics, and the epoch whose weights were kept."""

    loss: list[float] = field(default_factory=list)
    valid: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype, enabled=cfg.amp)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp)


class _Step:
    """Backward and optimiser step, with loss scaling where fp16 autocast needs it (CUDA without bf16)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device) -> None:
        self.device = device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        fp16 = device.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)

    def __call__(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


def _progress(batches: Iterable[Any], cfg: TrainConfig) -> Iterable[Any]:
    if not cfg.progress:
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc=f"train {cfg.model}", unit="batch", leave=False)


Kinds = Sequence[np.ndarray] | None  # each event's kind (sequences.EVENT_KINDS), aligned with the sessions


def weighted_loss(scores: torch.Tensor, targets: torch.Tensor, kinds: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy over all items, each target weighted by its kind (padding targets 0 count nothing); the
    plain mean when every weight is 1."""
    losses = F.cross_entropy(scores.float(), targets, ignore_index=0, reduction="none")
    weights = torch.tensor([1.0, cfg.cart_weight, cfg.purchase_weight], device=scores.device)[kinds]
    weights = weights * (targets != 0)
    return (losses * weights).sum() / weights.sum().clamp(min=1e-9)


def _epoch_session_parallel(
    model: nn.Module,
    seqs: Sequence[np.ndarray],
    cfg: TrainConfig,
    step: _Step,
    rng: np.random.Generator,
    kinds: Kinds = None,
) -> float:
    """One pass of GRU4Rec's session-parallel mini-batches; the hidden state is carried, detached, per lane."""
    device = step.device
    hidden: torch.Tensor | None = None
    recent: torch.Tensor | None = None  # each lane's last items, for the repeat bias
    total, steps = 0.0, 0
    for inputs, targets, reset, target_kinds in _progress(
        session_parallel_batches(seqs, cfg.batch_size, rng, kinds), cfg
    ):
        keep = torch.from_numpy(~reset).to(device)
        items = torch.from_numpy(inputs).to(device)
        if recent is None:  # as many lanes as the batcher opened (fewer than batch_size on little data)
            recent = torch.zeros(len(inputs), cfg.max_seq_len, dtype=torch.long, device=device)
        if hidden is not None:
            hidden = (hidden * keep.float()[None, :, None]).detach()
        recent = torch.cat([recent[:, 1:] * keep[:, None], items[:, None]], dim=1)
        with _autocast(cfg, device):
            scores, hidden = model.step(items, hidden, recent)  # type: ignore[operator]
            target = torch.from_numpy(targets).to(device)
            loss = weighted_loss(scores, target, torch.from_numpy(target_kinds).to(device), cfg)
        total, steps = total + step(loss), steps + 1
    return total / max(steps, 1)


def _epoch_padded(
    model: nn.Module,
    seqs: Sequence[np.ndarray],
    cfg: TrainConfig,
    step: _Step,
    rng: np.random.Generator,
    kinds: Kinds = None,
) -> float:
    """One pass over whole sessions, cross-entropy at every position (the padding target 0 is ignored)."""
    device = step.device
    total, steps = 0.0, 0
    batches = padded_batches(seqs, cfg.batch_size, cfg.max_seq_len, rng, kinds)
    for inputs, targets, target_kinds in _progress(batches, cfg):
        with _autocast(cfg, device):
            scores = model.scores_all(torch.from_numpy(inputs).to(device))  # type: ignore[operator]
            flat_targets = torch.from_numpy(targets).to(device).flatten()
            flat_kinds = torch.from_numpy(target_kinds).to(device).flatten()
            loss = weighted_loss(scores.flatten(0, 1), flat_targets, flat_kinds, cfg)
        total, steps = total + step(loss), steps + 1
    return total / max(steps, 1)


def torch_scorer(model: nn.Module, max_seq_len: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A metrics.ScoreFn over a torch model: keeps each prefix's last max_seq_len items, scores in eval mode."""

    def score(items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if items.shape[1] > max_seq_len:
            rows = [row[max(0, n - max_seq_len) : n] for row, n in zip(items, lengths, strict=True)]
            items = np.zeros((len(rows), max_seq_len), dtype=np.int64)
            for r, row in enumerate(rows):
                items[r, : len(row)] = row
            lengths = np.minimum(lengths, max_seq_len)
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            out = model(torch.from_numpy(items).to(device), torch.from_numpy(lengths).to(device)).float()
        return out.cpu().numpy()

    return score


def fit(
    model: nn.Module,
    seqs: Sequence[np.ndarray],
    cfg: TrainConfig,
    valid: Prefixes | None = None,
    on_epoch: Callable[[int, float, dict[str, float]], None] | None = None,
    kinds: Kinds = None,
) -> History:
    """Train for cfg.epochs; with `valid`, keep the weights of the epoch with the best validation MRR@20 and
    stop after cfg.patience epochs without improvement. Selection never sees the test set. With `kinds`, the
    loss weighs targets by cfg's cart and purchase weights."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg)
    model.to(device)
    step = _Step(model, cfg, device)
    rng = np.random.default_rng(cfg.seed)
    parallel = cfg.model == "gru4rec" and cfg.batching == "session-parallel"
    run_epoch = _epoch_session_parallel if parallel else _epoch_padded
    history, best_state, best = History(), None, -1.0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        history.loss.append(run_epoch(model, seqs, cfg, step, rng, kinds))
        scores = summarize(rank_prefixes(torch_scorer(model, cfg.max_seq_len), valid).ranks) if valid else {}
        history.valid.append(scores)
        if on_epoch:
            on_epoch(epoch, history.loss[-1], scores)
        if not valid:
            history.best_epoch = epoch
            continue
        if scores["mrr@20"] > best:
            best, history.best_epoch = scores["mrr@20"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - history.best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    model.cpu().eval()
    return history


@dataclass
class Trained:
    model: nn.Module
    selection: History  # the run on the fitting sessions, validated every epoch
    epochs: int  # chosen on validation
    seconds: float  # both runs
    fit_model: nn.Module | None = None  # the fitting run at its best epoch, for blends tuned on validation


def select_and_train(
    fit_seqs: Sequence[np.ndarray],
    train_seqs: Sequence[np.ndarray],
    valid: Prefixes,
    cfg: TrainConfig,
    n_items: int,
    on_epoch: Callable[[int, float, dict[str, float]], None] | None = None,
    kinds: tuple[Kinds, Kinds] = (None, None),
) -> Trained:
    """Choose the number of epochs by validation MRR@20 (early stopping) on a model fitted to `fit_seqs`, then
    fit a fresh model to all of `train_seqs` for that many epochs, so the final model also learns from the most
    recent days before the test period. The test set plays no part. `kinds`: the events' kinds of the fitting
    and of the training sessions, for cfg's type weighting."""
    start = time.perf_counter()
    seed_everything(cfg.seed)
    on_fit = build_model(cfg.model, cfg.model_args(n_items))
    selection = fit(on_fit, fit_seqs, cfg, valid, on_epoch, kinds[0])
    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.model_args(n_items))
    fit(model, train_seqs, replace(cfg, epochs=selection.best_epoch), kinds=kinds[1])
    return Trained(model, selection, selection.best_epoch, time.perf_counter() - start, on_fit)


def train_session_model(
    events: Iterable[CanonicalEvent],
    registry: Path,
    *,
    epochs: int = TrainConfig.epochs,
    seed: int = 0,
    config: TrainConfig | None = None,
    source: str = "events",
    holdout: float = 0.1,
) -> Path:
    """Train a session model on `events` and publish it to `registry`; returns the version directory.

    The last `holdout` share of sessions (by end time) is held out for the manifest's HR@20/MRR@20 only.
    """
    cfg = replace(config or TrainConfig(), epochs=epochs, seed=seed)
    frame = events_frame(events)
    sessions, _ = session_sequences(frame)
    n_test = int(len(sessions) * holdout)
    train_ids, test_ids = sessions[: len(sessions) - n_test], sessions[len(sessions) - n_test :]
    vocab = Vocabulary.build(train_ids)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.model_args(len(vocab)))
    history = fit(model, vocab.encode(train_ids), cfg)
    test = all_prefixes([s for s in vocab.encode(test_ids) if len(s) >= 2])
    metrics: dict[str, Any] = summarize(rank_prefixes(torch_scorer(model, cfg.max_seq_len), test).ranks)
    metrics |= {"heldout_prefixes": len(test), "train_seconds": round(history.seconds, 1), "epochs": epochs}
    return publish_model(
        registry,
        model,
        model_type=cfg.model,
        model_args=cfg.model_args(len(vocab)),
        vocabulary=vocab.item_ids,
        max_seq_len=cfg.max_seq_len,
        popular=popular_items(train_ids),
        data={
            "source": source,
            "sha256": events_sha256(frame),
            "n_events": len(frame),
            "n_sessions": len(sessions),
            "train_config": asdict(cfg),
        },
        metrics=metrics,
    )
