"""Which list a page view gets (refreshed, inline, popularity) and the rules applied to it."""

from __future__ import annotations

import asyncio

from streamrec.features.session_store import Recommendations, SessionState
from streamrec.serving.recommender import Answer, Candidates, Policy, Popular, recommend, score_sessions
from streamrec.serving.rules import apply_rules

POPULAR = Popular(["p1", "p2", "p3", "p4", "p5"], from_stream=True)


class FakeModel:
    version = "v-fake"

    def __init__(self, repeats: bool = False) -> None:
        self.calls = 0
        self.repeats = repeats

    def knows_any(self, history: list[str]) -> bool:
        return bool(history) and history[0] != "unknown"

    async def candidates(self, history: list[str], limit: int) -> Candidates:
        return (await self.many([history], limit))[0]

    async def many(self, histories: list[list[str]], limit: int) -> list[Candidates]:
        self.calls += 1
        return [
            None if h[0] == "unknown" else [(f"{h[-1]}-next{n}", 1 - n / 10) for n in range(8)][:limit]
            for h in histories
        ]


def state(items: list[str], last_event: str = "e9", purchases: list[str] | None = None) -> SessionState:
    return SessionState(items=items, purchases=purchases or [], last_event_id=last_event, updated_ms=1000)


def answer(
    model: FakeModel,
    k: int,
    st: SessionState | None,
    refreshed: Recommendations | None = None,
    excludes: set[str] | None = None,
    now: int = 1500,
    policy: Policy | None = None,
) -> Answer:
    return asyncio.run(recommend(model, POPULAR, k, excludes or set(), st, refreshed, now, policy or Policy()))


def ids(a: Answer) -> list[str]:
    return [i for i, _, _ in a.items]


def test_unknown_session_gets_flagged_trending_items() -> None:
    got = answer(FakeModel(), 3, None)
    assert got.fallback and got.source == "popularity" and got.state_age_ms == -1
    assert ids(got) == ["p1", "p2", "p3"] and got.items[0][2] == "trending now"


def test_current_refreshed_list_is_served_without_running_the_model() -> None:
    model = FakeModel()
    refreshed = Recommendations(9, [("r1", 0.9), ("r2", 0.8), ("r3", 0.7)], "v-old", "e9", 900, 950)
    got = answer(model, 2, state(["a"]), refreshed)
    assert got.source == "refreshed" and model.calls == 0
    assert ids(got) == ["r1", "r2"] and got.model_version == "v-old"
    assert got.state_age_ms == 500 and not got.fallback


def test_stale_refreshed_list_is_recomputed_inline() -> None:
    model = FakeModel()
    stale = Recommendations(8, [("r1", 0.9)], "v-old", "e8", 900, 950)
    got = answer(model, 2, state(["a", "b"]), stale)
    assert got.source == "inline" and model.calls == 1
    assert ids(got) == ["b-next0", "b-next1"]


def test_rules_exclude_purchases_request_items_and_duplicates() -> None:
    ranked = [("x", 1.0), ("y", 0.9), ("x", 0.8), ("z", 0.7), ("w", 0.6)]
    assert [i for i, _, _ in apply_rules(ranked, 3, {"y"}, "r")] == ["x", "z", "w"]
    got = answer(FakeModel(), 3, state(["b"], purchases=["b-next1"]), excludes={"b-next0"})
    assert ids(got) == ["b-next2", "b-next3", "b-next4"]


def test_at_most_n_items_per_category() -> None:
    ranked = [("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("b1", 0.6), ("x", 0.5), ("b2", 0.4)]
    categories = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B"}
    kept = apply_rules(ranked, 5, set(), "r", categories, max_per_category=2)
    assert [i for i, _, _ in kept] == ["a1", "a2", "b1", "x", "b2"]  # unknown category "x" is not capped
    policy = Policy(max_per_category=1, categories={f"b-next{n}": "same" for n in range(8)})
    assert ids(answer(FakeModel(), 3, state(["b"]), policy=policy))[:1] == ["b-next0"]


def test_short_lists_are_topped_up_with_trending_items_below_model_items() -> None:
    [(_, items)] = asyncio.run(score_sessions(FakeModel(), POPULAR, 10, [("s", ["a"], set())]))
    assert [i for i, _, _ in items][:8] == [f"a-next{n}" for n in range(8)]
    assert [i for i, _, _ in items][8:] == ["p1", "p2"] and items[8][2] == "trending now"
    assert items[8][1] < items[7][1]


def test_session_of_unknown_items_falls_back() -> None:
    got = answer(FakeModel(), 2, state(["unknown"]), now=2000)
    assert got.fallback and got.source == "popularity" and got.state_age_ms == 1000


def test_gpu_providers_take_the_fp16_variant_and_a_missing_gpu_is_an_error() -> None:
    import pytest

    from streamrec.artifact import Manifest
    from streamrec.errors import ScorerError
    from streamrec.serving.runtime import choose_providers, model_file_for

    manifest = Manifest("v", "gru4rec", {}, 3, 5, 2, files={"model.onnx": "a", "model.fp16.onnx": "b"})
    assert model_file_for("CUDAExecutionProvider", manifest) == "model.fp16.onnx"
    assert model_file_for("CPUExecutionProvider", manifest) == "model.onnx"
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ScorerError, match="CUDAExecutionProvider"):
        choose_providers("cuda")  # this machine's onnxruntime has no CUDA provider: said, not silently CPU


def test_a_reranker_reorders_inline_candidates_and_says_so() -> None:
    class Reverse:
        async def rerank(self, st: SessionState, candidates: list[tuple[str, float]]) -> list[tuple[str, float]]:
            return [(item, -score) for item, score in reversed(candidates)]

    got = answer(FakeModel(), 3, state(["b"]), policy=Policy(reranker=Reverse(), retrieve=200))
    assert ids(got) == ["b-next7", "b-next6", "b-next5"] and got.items[0][2] == "ranked for this session"


class EchoingModel(FakeModel):
    """Ranks the session's own last item first, as a model with a copy path does."""

    async def many(self, histories: list[list[str]], limit: int) -> list[Candidates]:
        self.calls += 1
        return [[(h[-1], 2.0), *[(f"{h[-1]}-next{n}", 1 - n / 10) for n in range(8)]][:limit] for h in histories]


def test_the_item_just_clicked_is_left_out_unless_the_model_repeats_on_purpose() -> None:
    plain = answer(EchoingModel(), 3, state(["a", "b"]))
    assert ids(plain) == ["b-next0", "b-next1", "b-next2"]
    [(_, refreshed)] = asyncio.run(score_sessions(EchoingModel(), POPULAR, 3, [("s", ["a", "b"], set())]))
    assert [i for i, _, _ in refreshed] == ["b-next0", "b-next1", "b-next2"]
    repeating = answer(EchoingModel(repeats=True), 3, state(["a", "b"]))
    assert ids(repeating) == ["b", "b-next0", "b-next1"]
    assert repeating.items[0][2] == "viewed in this session: the model scores a return"
    assert repeating.items[1][2] == "session model"


def test_a_refreshed_list_for_a_session_the_model_does_not_know_is_served_as_popularity() -> None:
    # what the worker stored for such a session is popularity too, whatever its label said at the time
    refreshed = Recommendations(9, [("p4", 0.9), ("p5", 0.8)], "v-old", "e9", 900, 950)
    got = answer(FakeModel(), 2, state(["unknown"]), refreshed)
    assert got.fallback and got.source == "popularity"
    assert {reason for _, _, reason in got.items} == {"trending now"}
