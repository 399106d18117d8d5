"""Cart and purchase signals in the neural models: each weighting is tried on validation, the chosen one is
trained with and recorded in the published version."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.artifact import load_manifest
from streamrec.training.datasets import Dataset, load_dataset
from streamrec.training.pipeline import train_on_dataset
from streamrec.training.synthetic import SyntheticConfig, write_shop_export
from streamrec.training.type_weights import CANDIDATES


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("typed") / "shop.csv"
    write_shop_export(path, SyntheticConfig(n_sessions=500, span_ms=2 * 3_600_000, p_cart=0.2, session_seed=2))
    return load_dataset(str(path))


def test_a_typed_neural_model_trains_and_publishes_with_the_weighting_chosen_on_validation(
    shop: Dataset, tmp_path: Path
) -> None:
    lines: list[str] = []
    version = train_on_dataset(shop, "gru4rec-typed", tmp_path / "registry", epochs=1, log=lines.append)
    manifest = load_manifest(version)
    chosen = manifest.metrics["type_weights"]
    assert tuple(chosen) in CANDIDATES and len(manifest.metrics["type_weights_tried"]) == len(CANDIDATES)
    tried = manifest.metrics["type_weights_tried"]
    assert tried["/".join(f"{w:g}" for w in chosen)] == max(tried.values())
    assert manifest.model_type == "gru4rec"
    assert sum("type weights" in line for line in lines) == len(CANDIDATES) + 1  # each try, then the choice
