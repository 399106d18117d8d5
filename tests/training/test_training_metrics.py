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
    # ndcg (1 + 0.6309 + 0.4307) / 4; the standard error: reciprocal ranks 1, 1/2, 1/4, 0 have sd 0.4270 over 2
    assert summarize(ranks) == {"hr@20": 75.0, "mrr@20": 43.75, "ndcg@20": 51.54, "mrr@20_se": 21.35}


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


def test_the_served_model_is_the_simplest_within_one_standard_error_of_the_best() -> None:
    from streamrec.training.evaluate import SERVABLE_MODELS, SIMPLEST_FIRST, servable_by_validation

    def entry(mrr: float, se: float) -> dict[str, dict[str, float]]:
        return {"valid": {"mrr@20": mrr, "hr@20": 0.0, "mrr@20_se": se}}

    assert set(SIMPLEST_FIRST) == SERVABLE_MODELS
    close = {"s-pop": entry(80.0, 1.0), "v-sknn": entry(50.0, 3.0), "sasrec": entry(52.0, 3.0)}
    assert servable_by_validation(close) == "v-sknn"  # s-pop is not servable; sasrec's lead is within 3.0
    apart = {"v-sknn": entry(50.0, 1.0), "sasrec": entry(52.0, 1.0), "v-sknn+sasrec": entry(52.5, 1.0)}
    assert servable_by_validation(apart) == "sasrec"  # the blend's lead over sasrec is within 1.0, kNN's is not
    assert servable_by_validation({"pop": entry(1.0, 0.1)}) is None
