"""Baselines on hand-made sessions, and V-SKNN against POP on the synthetic clickstream."""

from __future__ import annotations

import numpy as np

from streamrec.training.baselines import VSKNN, ItemKNN, Pop, SessionPop
from streamrec.training.metrics import all_prefixes, rank_prefixes, summarize
from streamrec.training.protocol import ProtocolConfig, make_split
from streamrec.training.sequences import events_frame
from streamrec.training.synthetic import SyntheticConfig, generate

SESSIONS = [np.array(s) for s in ([1, 2, 3], [1, 2], [2, 3], [4, 1, 2], [3, 3, 5])]
N_ITEMS = 6


def _ranked(scores: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-scores, kind="stable") if i != 0]


def test_pop_ranks_by_training_count() -> None:
    scores = Pop().fit(SESSIONS, N_ITEMS).score(np.array([[5]]), np.array([1]))[0]
    assert _ranked(scores)[:3] == [2, 3, 1]  # counts: 2 -> 4, 3 -> 4 (tie, lower index first), 1 -> 3


def test_session_pop_puts_session_items_first_then_popularity() -> None:
    scores = SessionPop().fit(SESSIONS, N_ITEMS).score(np.array([[5, 4, 4, 0]]), np.array([3]))[0]
    assert _ranked(scores)[:3] == [4, 5, 2]


def test_item_knn_follows_co_occurrence_with_the_last_item() -> None:
    model = ItemKNN(lmbd=0.0).fit(SESSIONS, N_ITEMS)
    scores = model.score(np.array([[3, 4]]), np.array([2]))[0]  # last item 4 occurs only with 1 and 2
    assert set(_ranked(scores)[:2]) == {1, 2}
    assert scores[4] < scores[1]  # an item is not its own neighbour


def test_vsknn_prefers_neighbours_of_recent_items() -> None:
    model = VSKNN(k=10, sample_size=10, idf_weight=0.0).fit(SESSIONS, N_ITEMS)
    scores = model.score(np.array([[4, 5]]), np.array([2]))[0]
    # 5 (most recent) shares a session only with 3; 4 shares one with 1 and 2: 3's session counts more
    assert scores[3] > scores[1] and scores[3] > scores[2]


def test_vsknn_beats_pop_on_synthetic_data() -> None:
    frame = events_frame(generate(SyntheticConfig(n_items=80, n_sessions=600, seed=4)))
    split = make_split(frame, ProtocolConfig(test_days=0.2, valid_days=0.2))
    test = all_prefixes(split.test)
    pop = summarize(rank_prefixes(Pop().fit(split.train, len(split.vocab)).score, test).ranks)
    knn = summarize(rank_prefixes(VSKNN().fit(split.train, len(split.vocab)).score, test).ranks)
    assert knn["hr@20"] > pop["hr@20"] + 20


def test_vsknn_type_weights_lift_what_neighbours_bought() -> None:
    # the prefix [1] shares a session with 2 (viewed) and one with 3 (bought there): plain V-SKNN ties 2 and 3
    sessions = [np.array([1, 2]), np.array([1, 3])]
    kinds = [np.array([0, 0], dtype=np.int8), np.array([0, 2], dtype=np.int8)]
    prefix, length = np.array([[1]]), np.array([1])
    plain = VSKNN(idf_weight=0.0).fit(sessions, 4, kinds).score(prefix, length)[0]
    weighted = VSKNN(idf_weight=0.0, type_weights=(1.0, 2.0, 4.0)).fit(sessions, 4, kinds).score(prefix, length)[0]
    assert plain[3] == plain[2] and weighted[3] > weighted[2]
    no_kinds = VSKNN(idf_weight=0.0, type_weights=(1.0, 2.0, 4.0)).fit(sessions, 4).score(prefix, length)[0]
    assert no_kinds[3] == no_kinds[2]  # without kinds there is nothing to weigh


def test_a_session_keeps_its_strongest_kind_per_item() -> None:
    # item 2 is viewed, carted and bought in one session: it weighs as bought, once
    sessions = [np.array([1, 2, 2, 2])]
    kinds = [np.array([0, 0, 1, 2], dtype=np.int8)]
    knn = VSKNN(idf_weight=0.0, type_weights=(1.0, 2.0, 4.0)).fit(sessions, 3, kinds)
    assert knn.item_weight.tolist() == [1.0, 4.0]
