"""Phase 1 session model: ONNX parity with torch, artifact contents, and learning the synthetic successors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from streamrec import artifact
from streamrec.training.export import export_onnx
from streamrec.training.gru4rec import GRU4Rec, GRU4RecArgs
from streamrec.training.synthetic import SyntheticConfig, generate, make_catalogue
from streamrec.training.train import train_session_model

SMALL = SyntheticConfig(n_items=120, n_sessions=1500, seed=3)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_session_model(generate(SMALL), tmp_path_factory.mktemp("registry"), epochs=4, seed=1)


def _session(version_dir: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(version_dir / artifact.MODEL), providers=["CPUExecutionProvider"])


def test_onnx_matches_torch_on_random_batches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    n_items = 300
    model = GRU4Rec(GRU4RecArgs(n_items=n_items, embedding_dim=32, hidden_size=48)).eval()
    session = ort.InferenceSession(str(export_onnx(model, n_items, tmp_path / "m.onnx")))
    rng = np.random.default_rng(0)
    for batch, seq_len in [(1, 1), (3, 7), (17, 50), (64, 12)]:
        items = rng.integers(1, n_items, size=(batch, seq_len))
        lengths = rng.integers(1, seq_len + 1, size=batch)
        for row, n in enumerate(lengths):
            items[row, n:] = 0
        top_scores, top_items = session.run(None, {"items": items, "lengths": lengths})
        assert top_scores.shape == (batch, 200) and top_items.dtype == np.int64
        with torch.no_grad():
            scores = model(torch.from_numpy(items), torch.from_numpy(lengths))
        scores[:, 0] = float("-inf")
        expected_scores, expected_items = torch.topk(scores, 200)
        np.testing.assert_array_equal(top_items, expected_items.numpy())
        np.testing.assert_allclose(top_scores, expected_scores.numpy(), atol=1e-4)
        assert not (top_items == 0).any()


def test_padding_does_not_change_scores() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(GRU4RecArgs(n_items=50)).eval()
    short = torch.tensor([[5, 9, 2]])
    padded = torch.tensor([[5, 9, 2, 0, 0, 0]])
    with torch.no_grad():
        a = model(short, torch.tensor([3]))
        b = model(padded, torch.tensor([3]))
    torch.testing.assert_close(a, b)


def test_artifact_verifies_and_manifest_is_complete(published: Path) -> None:
    manifest = artifact.verify(published)
    vocab = artifact.load_vocabulary(published)
    assert manifest.model_type == "gru4rec"
    assert manifest.n_items == len(vocab) and vocab[0] == ""
    assert manifest.candidates == min(200, len(vocab) - 1)
    assert manifest.max_seq_len == 50
    assert manifest.model_args["n_items"] == manifest.n_items
    GRU4Rec(GRU4RecArgs(**manifest.model_args))  # the arguments rebuild the model
    assert len(manifest.popular_items) == min(200, len(vocab) - 1)
    assert set(manifest.data) >= {"source", "sha256", "n_events", "n_sessions"}
    assert manifest.data["n_sessions"] == SMALL.n_sessions
    assert {"hr@20", "mrr@20"} <= manifest.metrics.keys()
    assert set(manifest.files) == {artifact.MODEL, artifact.VOCABULARY}
    assert artifact.current_version(published.parent) == published.name
    assert json.loads((published / artifact.VOCABULARY).read_text()) == vocab


def test_model_learns_the_synthetic_successors(published: Path) -> None:
    catalogue = make_catalogue(SMALL)
    vocab = artifact.load_vocabulary(published)
    index = {item: i for i, item in enumerate(vocab)}
    session = _session(published)
    known = [item for item in catalogue.item_ids if item in index]
    items = np.array([[index[item]] for item in known], dtype=np.int64)
    _, top_items = session.run(None, {"items": items, "lengths": np.ones(len(known), dtype=np.int64)})
    tops = [{vocab[i] for i in top[:10]} for top in top_items]
    hits = np.mean([catalogue.successor_of(x) in top for x, top in zip(known, tops, strict=True)])
    counts = Counter(e.item_id for e in generate(SMALL))
    top10 = {item for item, _ in counts.most_common(10)}
    popular_hits = np.mean([catalogue.successor_of(x) in top10 for x in known])
    assert hits > 0.8 and hits > popular_hits + 0.5, (hits, popular_hits)
