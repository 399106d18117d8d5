"""Session kNN as a servable graph: the torch graph scores exactly as the V-SKNN baseline, its ONNX export ranks
the same in ONNX Runtime, and `train --model v-sknn` publishes a version the scorer's runtime serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from streamrec.artifact import current_version, load_manifest
from streamrec.serving.runtime import ModelRuntime
from streamrec.training.baselines import VSKNN
from streamrec.training.datasets import Dataset, load_dataset
from streamrec.training.export import export_onnx
from streamrec.training.knn_graph import SessionKNNGraph
from streamrec.training.metrics import all_prefixes
from streamrec.training.pipeline import train_on_dataset
from streamrec.training.protocol import Split, make_split
from streamrec.training.synthetic import SyntheticConfig, write_shop_export


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("knn") / "shop.csv"
    write_shop_export(path, SyntheticConfig(n_sessions=1500, span_ms=3 * 3_600_000, session_seed=5))
    return load_dataset(str(path))


@pytest.fixture(scope="module")
def split(shop: Dataset) -> Split:
    return make_split(shop.events, shop.protocol)


def padded(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    items = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for i, row in enumerate(rows):
        items[i, : len(row)] = row
    return items, np.array([len(r) for r in rows], dtype=np.int64)


def prefixes_with_repeats(split: Split, n: int) -> list[np.ndarray]:
    rows = all_prefixes(split.test).items[:n]
    return [*rows, np.concatenate([rows[-1], rows[-1][:2]])]  # an item seen twice weighs by its latest position


# the defaults, a sample that binds, and carts and purchases weighted
@pytest.mark.parametrize(
    ("k", "sample_size", "type_weights"), [(100, 500, (1, 1, 1)), (5, 20, (1, 1, 1)), (100, 500, (1, 2, 4))]
)
def test_the_graph_scores_exactly_as_the_baseline(
    split: Split, k: int, sample_size: int, type_weights: tuple[float, float, float]
) -> None:
    knn = VSKNN(k=k, sample_size=sample_size, type_weights=type_weights)
    knn.fit(split.train, len(split.vocab), split.train_kinds)
    items, lengths = padded(prefixes_with_repeats(split, 200))
    expected = knn.score(items, lengths)
    with torch.no_grad():
        got = SessionKNNGraph(knn)(torch.from_numpy(items), torch.from_numpy(lengths)).numpy()
    got[:, 0] = 0.0  # the padding item, masked by the top-k graph
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_the_onnx_export_ranks_as_the_baseline(split: Split, tmp_path: Path) -> None:
    knn = VSKNN().fit(split.train, len(split.vocab))
    path = export_onnx(SessionKNNGraph(knn).eval(), len(split.vocab), tmp_path / "knn.onnx", k=20)
    items, lengths = padded(prefixes_with_repeats(split, 100))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores, top = session.run(None, {"items": items, "lengths": lengths})
    expected = knn.score(items, lengths)
    expected[:, 0] = -np.inf
    assert (top == np.argsort(-expected, axis=1, kind="stable")[:, :20]).all()
    assert scores.dtype == np.float32 and (np.diff(scores, axis=1) <= 0).all()


def test_train_publishes_a_version_the_scorer_serves(shop: Dataset, split: Split, tmp_path: Path) -> None:
    version = train_on_dataset(shop, "v-sknn", tmp_path / "registry", log=lambda _: None)
    manifest = load_manifest(version)
    assert version.name == current_version(tmp_path / "registry")
    assert manifest.model_type == "v-sknn" and manifest.model_args["sample_size"] == 500
    assert manifest.metrics["valid"]["mrr@20"] > 0 and manifest.metrics["test_prefixes"] > 0

    runtime = ModelRuntime(version, "cpu")
    history = [split.vocab.item_ids[i] for i in all_prefixes(split.test).items[0]]
    [answer] = runtime.candidates([history], limit=10)
    assert answer is not None
    knn = VSKNN().fit(split.train, len(split.vocab))
    items, lengths = padded(split.vocab.encode([history]))
    expected = knn.score(items, lengths)[0]
    expected[0] = -np.inf
    assert [item for item, _ in answer] == [split.vocab.item_ids[i] for i in np.argsort(-expected, kind="stable")[:10]]


def test_evaluate_says_what_is_servable_and_auto_takes_the_best_servable_on_validation(shop: Dataset) -> None:
    from streamrec.training.evaluate import evaluate_dataset
    from streamrec.training.pipeline import choose_by_validation

    report = evaluate_dataset(shop, ("s-pop", "v-sknn", "gru4rec"))
    assert {name: entry["servable"] for name, entry in report["models"].items()} == {
        "s-pop": False,
        "v-sknn": True,
        "gru4rec": True,
    }
    valid = {name: entry["valid"]["mrr@20"] for name, entry in report["models"].items()}
    best = max(("v-sknn", "gru4rec"), key=valid.__getitem__)
    assert report["best_servable_by_validation"] == best
    assert choose_by_validation(shop, ("v-sknn", "gru4rec"), log=lambda _: None) == best


def test_typed_models_weigh_the_shops_carts_and_report_their_weighting(shop: Dataset, tmp_path: Path) -> None:
    from streamrec.training.evaluate import evaluate_dataset
    from streamrec.training.type_weights import CANDIDATES

    report = evaluate_dataset(shop, ("v-sknn", "v-sknn-typed"))
    typed = report["models"]["v-sknn-typed"]
    assert typed["servable"] and tuple(typed["type_weights"]) in CANDIDATES
    assert len(typed["type_weights_tried"]) == len(CANDIDATES)
    # plain weighting is a candidate: the typed model is never worse on validation than its family
    assert typed["valid"]["mrr@20"] >= report["models"]["v-sknn"]["valid"]["mrr@20"]

    version = train_on_dataset(shop, "v-sknn-typed", tmp_path / "registry", log=lambda _: None)
    manifest = load_manifest(version)
    assert manifest.model_type == "v-sknn" and manifest.model_args["type_weights"] == typed["type_weights"]
    assert manifest.metrics["type_weights"] == typed["type_weights"]


def test_a_clickstream_without_carts_skips_the_typed_models(tmp_path: Path) -> None:
    from streamrec.errors import DataError
    from streamrec.training.canonical import write_parquet
    from streamrec.training.evaluate import evaluate_dataset
    from streamrec.training.sequences import events_frame
    from streamrec.training.synthetic import generate

    frame = events_frame(generate(SyntheticConfig(n_sessions=400, p_cart=0.0, seed=3)))
    path = write_parquet(frame, tmp_path / "clicks.parquet")
    clicks = load_dataset(str(path))
    report = evaluate_dataset(clicks, ("v-sknn", "v-sknn-typed"))
    assert set(report["models"]) == {"v-sknn"} and "no cart or purchase" in report["skipped"]["v-sknn-typed"]
    with pytest.raises(DataError, match="train v-sknn instead"):
        train_on_dataset(clicks, "v-sknn-typed", tmp_path / "registry", log=lambda _: None)
