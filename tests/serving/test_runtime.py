"""The ONNX Runtime session model: a batch answers each history as it would be answered alone."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streamrec.artifact import current_version
from streamrec.serving.runtime import ModelRuntime, pad, width_groups


def test_width_groups_bound_the_padding_and_skip_empty_histories() -> None:
    sequences = [[1] * n for n in (3, 0, 1, 9, 4, 2, 16, 17, 5)]
    groups = width_groups(sequences)
    assert sorted(row for group in groups for row in group) == [0, 2, 3, 4, 5, 6, 7, 8]  # row 1 is empty
    for group in groups:
        lengths = [len(sequences[row]) for row in group]
        assert max(lengths) < 2 * min(lengths) or max(lengths) <= 2  # no row padded to twice its length or more
    items, lengths = pad([sequences[row] for row in groups[-1]])
    assert items.shape == (1, 17) and lengths.tolist() == [17]


def test_a_batch_answers_each_history_as_alone(trained_registry: Path) -> None:
    runtime = ModelRuntime(trained_registry / current_version(trained_registry), "cpu")
    rng = random.Random(3)
    known = runtime.vocabulary[1:]
    histories = [[rng.choice(known) for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 40, 80]))] for _ in range(40)]
    histories += [[], ["no-such-item"], ["no-such-item", known[0]]]
    rng.shuffle(histories)
    together = runtime.candidates(histories, 20)
    for history, answer in zip(histories, together, strict=True):
        [alone] = runtime.candidates([history], 20)
        if alone is None:
            assert answer is None and not any(item in runtime.index for item in history)
            continue
        assert answer is not None and len(answer) == 20
        assert [score for _, score in answer] == pytest.approx([score for _, score in alone], rel=1e-4, abs=1e-5)
        scores = dict(alone)
        for (item, score), (alone_item, _) in zip(answer, alone, strict=True):  # the same order, but for near-ties
            assert item == alone_item or scores.get(item, float("-inf")) == pytest.approx(score, abs=1e-5)
