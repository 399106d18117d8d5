"""The validation curve of a training run as a PNG: loss and validation HR@20/MRR@20 per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first


def plot_validation_curve(
    loss: list[float], valid: list[dict[str, float]], best_epoch: int, title: str, path: Path
) -> Path:
    epochs = list(range(1, len(loss) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, loss, marker="o")
    left.set(xlabel="epoch", ylabel="training cross-entropy", title="training loss")
    for key in ("hr@20", "mrr@20"):
        right.plot(epochs[: len(valid)], [v.get(key, float("nan")) for v in valid], marker="o", label=key.upper())
    right.axvline(best_epoch, color="grey", linestyle="--", label=f"selected epoch {best_epoch}")
    right.set(xlabel="epoch", ylabel="% on the validation split", title="validation")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
