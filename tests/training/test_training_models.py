"""SASRec and GRU4Rec with the repeat bias: ONNX parity, padding invariance, batching and checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from streamrec.training.export import export_onnx
from streamrec.training.gru4rec import GRU4Rec, GRU4RecArgs
from streamrec.training.models import build_model, load_checkpoint, save_checkpoint
from streamrec.training.repeat import RepeatBias
from streamrec.training.sasrec import SASRec, SASRecArgs
from streamrec.training.sequences import padded_batches, session_parallel_batches
from streamrec.training.train import TrainConfig, fit

N_ITEMS = 300


def _models() -> list[tuple[str, nn.Module]]:
    torch.manual_seed(0)
    models: list[tuple[str, nn.Module]] = [
        ("sasrec", SASRec(SASRecArgs(N_ITEMS, embedding_dim=32))),
        ("gru4rec-repeat", GRU4Rec(GRU4RecArgs(N_ITEMS, embedding_dim=32, hidden_size=48, repeat_bias=True))),
    ]
    for _, model in models:
        with torch.no_grad():  # spread the scores so that near-ties do not blur the comparison
            for param in model.parameters():
                param.normal_(0.0, 0.3)
    return [(name, model.eval()) for name, model in models]


def _batch(rng: np.random.Generator, batch: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    items = rng.integers(1, N_ITEMS, size=(batch, seq_len))
    lengths = rng.integers(1, seq_len + 1, size=batch)
    for row, n in enumerate(lengths):
        items[row, n:] = 0
    return items, lengths


@pytest.mark.parametrize("index", [0, 1], ids=["sasrec", "gru4rec-repeat"])
def test_onnx_matches_torch(index: int, tmp_path: Path) -> None:
    _, model = _models()[index]
    session = ort.InferenceSession(str(export_onnx(model, N_ITEMS, tmp_path / "m.onnx")))
    rng = np.random.default_rng(1)
    for batch, seq_len in [(1, 1), (4, 9), (33, 50), (64, 3)]:
        items, lengths = _batch(rng, batch, seq_len)
        top_scores, top_items = session.run(None, {"items": items, "lengths": lengths})
        with torch.no_grad():
            scores = model(torch.from_numpy(items), torch.from_numpy(lengths))
        scores[:, 0] = float("-inf")
        expected_scores, expected_items = torch.topk(scores, 200)
        np.testing.assert_allclose(top_scores, expected_scores.numpy(), atol=1e-4)
        # Items may swap places only where torch itself scores them within float noise of each other.
        torch_score_of_onnx_items = torch.gather(scores, 1, torch.from_numpy(top_items)).numpy()
        np.testing.assert_allclose(torch_score_of_onnx_items, expected_scores.numpy(), atol=1e-4)
        assert (top_items == expected_items.numpy()).mean() > 0.99


@pytest.mark.parametrize("index", [0, 1], ids=["sasrec", "gru4rec-repeat"])
def test_right_padding_changes_nothing_and_all_positions_agree(index: int) -> None:
    _, model = _models()[index]
    items = torch.tensor([[5, 9, 5, 2, 0, 0], [7, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([4, 1])
    with torch.no_grad():
        padded = model(items, lengths)
        tight = model(items[:, :4], lengths)
        every = model.scores_all(items)  # type: ignore[operator]
    torch.testing.assert_close(padded, tight)
    torch.testing.assert_close(every[0, 3], padded[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(every[1, 0], padded[1], rtol=1e-5, atol=1e-5)


def test_repeat_bias_adds_one_bonus_per_occurrence_by_distance() -> None:
    bias = RepeatBias(max_distance=3)
    with torch.no_grad():
        bias.bonus.weight.copy_(torch.tensor([[1.0], [10.0], [100.0], [1000.0]]))
    out = bias.last(torch.zeros(1, 8), torch.tensor([[4, 6, 4, 2, 0]]), torch.tensor([4]))
    # distances from the end: 2 -> 0, 4 -> 1 and 3, 6 -> 2; the distance beyond 3 would share the last row
    assert out[0].tolist() == [0.0, 0.0, 1.0, 0.0, 1010.0, 0.0, 100.0, 0.0]
    every = bias.all_positions(torch.zeros(1, 5, 8), torch.tensor([[4, 6, 4, 2, 0]]))
    torch.testing.assert_close(every[0, 3], out[0])


def test_session_parallel_batches_visit_every_transition_of_the_sessions_they_finish() -> None:
    sessions = [np.array([1, 2, 3]), np.array([4, 5]), np.array([6, 7, 8, 9]), np.array([3])]
    kinds = [np.array([0, 0, 2]), np.array([0, 1]), np.array([0, 0, 0, 0]), np.array([0])]
    seen, resets = [], 0
    for inputs, targets, reset, target_kinds in session_parallel_batches(sessions, 2, np.random.default_rng(0), kinds):
        seen += list(zip(inputs.tolist(), targets.tolist(), target_kinds.tolist(), strict=True))
        resets += int(reset.sum())
    # each target comes with its own event's kind: 3 was bought, 5 carted
    assert set(seen) <= {(1, 2, 0), (2, 3, 2), (4, 5, 1), (6, 7, 0), (7, 8, 0), (8, 9, 0)}
    assert len(seen) == len(set(seen)) >= 4 and resets == 3  # the single-item session is skipped


def test_padded_batches_cut_long_sessions_into_windows() -> None:
    long = np.arange(1, 13)  # 11 transitions, windows of 5 transitions
    kinds = (long % 3 == 0).astype(np.int8)  # every third event a cart
    triples = set()
    for inputs, targets, target_kinds in padded_batches([long], 8, 5, np.random.default_rng(0), [kinds]):
        flat = zip(inputs.ravel().tolist(), targets.ravel().tolist(), target_kinds.ravel().tolist(), strict=True)
        triples |= {(a, b, k) for a, b, k in flat if b}
    assert triples == {(i, i + 1, int((i + 1) % 3 == 0)) for i in range(1, 12)}


def test_type_weights_move_the_loss_toward_the_weighted_targets() -> None:
    from streamrec.training.train import TrainConfig, weighted_loss

    scores = torch.log_softmax(torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]), dim=1)
    targets, kinds = torch.tensor([1, 1]), torch.tensor([0, 2])  # the second target, a purchase, is scored badly
    plain = weighted_loss(scores, targets, kinds, TrainConfig())
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(scores, targets))
    assert weighted_loss(scores, targets, kinds, TrainConfig(purchase_weight=4.0)) > plain
    padded = weighted_loss(scores, torch.tensor([1, 0]), kinds, TrainConfig(purchase_weight=4.0))
    torch.testing.assert_close(padded, torch.nn.functional.cross_entropy(scores[:1], targets[:1]))


def test_checkpoint_rebuilds_the_model(tmp_path: Path) -> None:
    _, model = _models()[0]
    args = SASRecArgs(N_ITEMS, embedding_dim=32).to_dict()
    path = save_checkpoint(tmp_path / "m.pt", model, "sasrec", args, vocabulary=["", "a"])
    again, meta = load_checkpoint(path)
    assert meta["vocabulary"] == ["", "a"] and meta["model_args"] == args
    items, lengths = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    with torch.no_grad():
        torch.testing.assert_close(again(items, lengths), model(items, lengths))


def test_session_parallel_training_with_fewer_sessions_than_lanes() -> None:
    cfg = TrainConfig(model="gru4rec", repeat_bias=True, epochs=1, batch_size=32)
    model = build_model("gru4rec", cfg.model_args(20))
    history = fit(model, [np.array([1, 2, 3]), np.array([4]), np.array([5, 6]), np.array([7])], cfg)
    assert np.isfinite(history.loss[0])
