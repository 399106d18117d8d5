"""Which list a page view gets (refreshed, inline, popularity) and the rules applied to it."""

from __future__ import annotations

from features.session_store import Recommendations, SessionState
from serving.recommender import apply_rules, recommend, score_sessions

POPULAR = ["p1", "p2", "p3", "p4", "p5"]


class FakeModel:
    version = "v-fake"

    def __init__(self) -> None:
        self.calls = 0

    def candidates(self, histories: list[list[str]], limit: int | None = None) -> list[list[tuple[str, float]] | None]:
        self.calls += 1
        return [None if h[0] == "unknown" else [(f"{h[-1]}-next{n}", 1 - n / 10) for n in range(6)] for h in histories]


def state(items: list[str], last_event: str = "e9", purchases: list[str] | None = None) -> SessionState:
    return SessionState(items=items, purchases=purchases or [], last_event_id=last_event, updated_ms=1000)


def test_unknown_session_gets_flagged_popularity() -> None:
    answer = recommend(FakeModel(), POPULAR, 3, set(), None, None, now_ms=5000)
    assert answer.fallback and answer.source == "popularity" and answer.state_age_ms == -1
    assert [i for i, _, _ in answer.items] == ["p1", "p2", "p3"]


def test_current_refreshed_list_is_served_without_running_the_model() -> None:
    model = FakeModel()
    refreshed = Recommendations(9, [("r1", 0.9), ("r2", 0.8), ("r3", 0.7)], "v-old", "e9", 900, 950)
    answer = recommend(model, POPULAR, 2, set(), state(["a"]), refreshed, now_ms=1500)
    assert answer.source == "refreshed" and model.calls == 0
    assert [i for i, _, _ in answer.items] == ["r1", "r2"] and answer.model_version == "v-old"
    assert answer.state_age_ms == 500 and not answer.fallback


def test_stale_refreshed_list_is_recomputed_inline() -> None:
    model = FakeModel()
    stale = Recommendations(8, [("r1", 0.9)], "v-old", "e8", 900, 950)
    answer = recommend(model, POPULAR, 2, set(), state(["a", "b"]), stale, now_ms=1500)
    assert answer.source == "inline" and model.calls == 1
    assert [i for i, _, _ in answer.items] == ["b-next0", "b-next1"]


def test_rules_exclude_purchases_request_items_and_duplicates() -> None:
    ranked = [("x", 1.0), ("y", 0.9), ("x", 0.8), ("z", 0.7), ("w", 0.6)]
    assert [i for i, _, _ in apply_rules(ranked, 3, {"y"}, "r")] == ["x", "z", "w"]
    answer = recommend(FakeModel(), POPULAR, 3, {"b-next0"}, state(["b"], purchases=["b-next1"]), None, 0)
    assert [i for i, _, _ in answer.items] == ["b-next2", "b-next3", "b-next4"]


def test_short_lists_are_topped_up_with_popular_items_below_model_items() -> None:
    [(_, items)] = score_sessions(FakeModel(), POPULAR, 8, [("s", ["a"], set())])
    assert [i for i, _, _ in items][:6] == [f"a-next{n}" for n in range(6)]
    assert [i for i, _, r in items][6:] == ["p1", "p2"] and items[6][2] == "popular now"
    assert items[6][1] < items[5][1]


def test_session_of_unknown_items_falls_back() -> None:
    answer = recommend(FakeModel(), POPULAR, 2, set(), state(["unknown"]), None, now_ms=2000)
    assert answer.fallback and answer.source == "popularity" and answer.state_age_ms == 1000
