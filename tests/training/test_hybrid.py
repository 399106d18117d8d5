"""The kNN + neural hybrid: its blend normalises each part to its best item, its weight is chosen on validation,
and `train --model v-sknn+gru4rec` publishes one ONNX graph that the scorer's runtime serves as the blend ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.artifact import load_manifest
from streamrec.serving.runtime import ModelRuntime
from streamrec.training.datasets import Dataset, load_dataset
from streamrec.training.hybrid import WEIGHTS, blend
from streamrec.training.metrics import all_prefixes
from streamrec.training.pipeline import train_on_dataset
from streamrec.training.protocol import make_split
from streamrec.training.synthetic import SyntheticConfig, write_shop_export


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("hybrid") / "shop.csv"
    write_shop_export(path, SyntheticConfig(n_sessions=1500, span_ms=3 * 3_600_000, session_seed=5))
    return load_dataset(str(path))


def test_the_blend_scales_each_part_to_its_best_item() -> None:
    knn = np.array([[9.0, 2.0, 4.0, 0.0]])  # item 0 is padding: never counted
    logits = np.array([[5.0, 0.0, np.log(0.5), 1.0]])
    assert blend(knn, logits, 1.0).tolist() == [[0.0, 0.5, 1.0, 0.0]]
    np.testing.assert_allclose(blend(knn, logits, 0.0), [[0.0, 1 / np.e, 0.5 / np.e, 1.0]])
    both = blend(knn, logits, 0.5)
    assert both.argmax() == 2 and set(WEIGHTS) >= {0.0, 0.5, 1.0}


def test_train_publishes_a_blend_the_scorer_serves(shop: Dataset, tmp_path: Path) -> None:
    version = train_on_dataset(shop, "v-sknn+gru4rec", tmp_path / "registry", progress=False, log=lambda _: None)
    manifest = load_manifest(version)
    assert manifest.model_type == "hybrid" and manifest.model_args["weight"] in WEIGHTS
    assert manifest.model_args["neural_type"] == "gru4rec" and manifest.metrics["valid"]["mrr@20"] > 0

    split = make_split(shop.events, shop.protocol)
    runtime = ModelRuntime(version, "cpu")
    histories = [[split.vocab.item_ids[i] for i in p] for p in all_prefixes(split.test).items[:20]]
    answers = runtime.candidates(histories, limit=10)
    assert all(answer is not None and len(answer) == 10 for answer in answers)
    # scores are the blend's: the best item scores at least what either part's best item brings, and at most 1
    weight = manifest.model_args["weight"]
    for answer in answers:
        assert answer is not None
        assert max(weight, 1 - weight) - 1e-6 <= answer[0][1] <= 1.0 + 1e-6
        assert [s for _, s in answer] == sorted((s for _, s in answer), reverse=True)
