"""Ranking metrics against hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.training.metrics import all_prefixes, hit_rate, mrr, ndcg, rank_prefixes, summarize, target_ranks


def test_ranks_count_strictly_higher_scores_and_ignore_padding() -> None:
    scores = np.array(
        [
            [9.0, 0.1, 0.5, 0.3, 0.2],  # target 2 is the best real item; padding column 0 is ignored
            [0.0, 0.4, 0.4, 0.9, 0.1],  # target 1 ties with item 2: ties do not count against it
            [0.0, 0.1, 0.2, 0.3, 0.4],  # target 1 is last of four
        ]
    )
    np.testing.assert_array_equal(target_ranks(scores, np.array([2, 1, 1])), [1, 2, 4])


def test_metrics_by_hand() -> None:
    ranks = np.array([1, 2, 4, 25])
    assert hit_rate(ranks, 20) == pytest.approx(3 / 4)
    assert mrr(ranks, 20) == pytest.approx((1 + 1 / 2 + 1 / 4 + 0) / 4)
    assert ndcg(ranks, 20) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5) + 0) / 4)
    assert hit_rate(ranks, 1) == pytest.approx(1 / 4)
    assert summarize(ranks) == {"hr@20": 75.0, "mrr@20": 43.75, "ndcg@20": 51.54}  # (1 + 0.6309 + 0.4307) / 4


def test_empty_ranks_give_zero() -> None:
    assert hit_rate(np.array([])) == mrr(np.array([])) == ndcg(np.array([])) == 0.0


def test_every_prefix_predicts_the_next_item() -> None:
    prefixes = all_prefixes([np.array([5, 6, 7]), np.array([8, 9])])
    assert [p.tolist() for p in prefixes.items] == [[5], [5, 6], [8]]
    assert prefixes.targets.tolist() == [6, 7, 9]
    assert prefixes.session_index.tolist() == [0, 0, 1]


def test_rank_prefixes_keeps_the_input_order() -> None:
    prefixes = all_prefixes([np.array([1, 2, 3, 4]), np.array([4, 3])])

    def score_last_plus_one(items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        # a perfect model for "next = last + 1": the item after the last one scores highest
        out = np.zeros((len(items), 6))
        out[np.arange(len(items)), items[np.arange(len(items)), lengths - 1] + 1] = 1.0
        return out

    ranks = rank_prefixes(score_last_plus_one, prefixes, batch_size=2).ranks
    assert ranks.tolist() == [1, 1, 1, ranks[3]] and ranks[3] > 1  # 4 -> 3 breaks the rule
