"""The neural model types by name: build one from its arguments, and checkpoints that carry those arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamrec.artifact import NEURAL_MODEL_TYPES
from streamrec.errors import ArtifactError
from streamrec.training.gru4rec import GRU4Rec, GRU4RecArgs
from streamrec.training.sasrec import SASRec, SASRecArgs

NEURAL_MODELS = NEURAL_MODEL_TYPES


def build_model(model_type: str, args: dict[str, Any]) -> nn.Module:
    """Rebuild a model from `model_type` and the `model_args` a checkpoint or manifest carries."""
    if model_type == "gru4rec":
        return GRU4Rec(GRU4RecArgs(**args))
    if model_type == "sasrec":
        return SASRec(SASRecArgs(**args))
    raise ValueError(f"unknown model type {model_type!r}; known: {NEURAL_MODELS}")


def save_checkpoint(path: Path, model: nn.Module, model_type: str, model_args: dict[str, Any], **meta: Any) -> Path:
    """Weights plus everything needed to rebuild and publish the model (vocabulary, metrics, data, settings)."""
    torch.save({"model_type": model_type, "model_args": model_args, "state_dict": model.state_dict(), **meta}, path)
    return path


def load_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The rebuilt model in eval mode, and the checkpoint's other entries."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ArtifactError(f"cannot read checkpoint {path}: {exc}") from exc
    model = build_model(raw["model_type"], raw["model_args"])
    model.load_state_dict(raw["state_dict"])
    return model.eval(), {k: v for k, v in raw.items() if k != "state_dict"}
