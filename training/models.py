"""The neural model types by name: build one from its arguments (as stored in checkpoints and manifests)."""

from __future__ import annotations

from typing import Any

from torch import nn

from training.gru4rec import GRU4Rec, GRU4RecArgs
from training.sasrec import SASRec, SASRecArgs

NEURAL_MODELS = ("gru4rec", "sasrec")


def build_model(model_type: str, args: dict[str, Any]) -> nn.Module:
    """Rebuild a model from `model_type` and the `model_args` a checkpoint or manifest carries."""
    if model_type == "gru4rec":
        return GRU4Rec(GRU4RecArgs(**args))
    if model_type == "sasrec":
        return SASRec(SASRecArgs(**args))
    raise ValueError(f"unknown model type {model_type!r}; known: {NEURAL_MODELS}")
