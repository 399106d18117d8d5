"""Answers from the stored bytes: the same message the built path makes, excludes applied, and when they may serve."""

from __future__ import annotations

from streamrec.features.session_store import Recommendations, SessionState
from streamrec.protos import recommender_pb2 as pb
from streamrec.serving import prebuilt
from streamrec.serving.rules import REASON_REPEAT, REASON_SESSION, REASON_TRENDING, Scored

ITEMS: list[Scored] = [(f"i{n}", 1.0 - n / 10, REASON_SESSION) for n in range(5)] + [("i5", 0.4, REASON_REPEAT)]
NOW = 10_000


def stored(items: list[Scored] = ITEMS, event_id: str = "e9", version: str = "v1") -> Recommendations:
    wire = Recommendations.encode_wire(prebuilt.encode(items))
    return Recommendations(9, [(i, s) for i, s, _ in items], version, event_id, 900, 950, wire)


def state(last_event_id: str = "e9") -> SessionState:
    return SessionState(items=["a"], last_event_id=last_event_id, updated_ms=NOW - 40)


def parsed(raw: bytes | None) -> pb.RecommendResponse:
    assert raw is not None
    return pb.RecommendResponse.FromString(raw)


def test_the_stored_answer_parses_as_the_message_the_built_path_makes() -> None:
    recs = Recommendations.from_json(stored().to_json())  # as read back from Redis
    got = parsed(prebuilt.answer_for(state(), recs, "v1", len(ITEMS), set(), NOW))
    built = pb.RecommendResponse(model_version="v1", state_age_ms=40, source="refreshed", cause_event_id="e9")
    for item_id, score, reason in ITEMS:
        built.items.add(item_id=item_id, score=score, reason=reason)
    assert got == built
    assert not got.fallback


def test_excludes_and_a_shorter_k_take_the_next_entries() -> None:
    got = parsed(prebuilt.answer_for(state(), stored(), "v1", 3, {"i1", "i3"}, NOW))
    assert [i.item_id for i in got.items] == ["i0", "i2", "i4"]
    assert [i.reason for i in got.items] == [REASON_SESSION] * 3
    assert [i.item_id for i in parsed(prebuilt.answer_for(state(), stored(), "v1", 2, set(), NOW)).items] == [
        "i0",
        "i1",
    ]


def test_too_few_left_after_excludes_leaves_it_to_the_built_path() -> None:
    assert prebuilt.answer_for(state(), stored(), "v1", 6, {"i0"}, NOW) is None
    assert prebuilt.answer_for(state(), stored(), "v1", 7, set(), NOW) is None


def test_a_stale_list_another_model_or_no_bytes_never_serves() -> None:
    assert prebuilt.answer_for(state("e10"), stored(), "v1", 3, set(), NOW) is None  # the session moved on
    assert prebuilt.answer_for(state(), stored(version="v0"), "v1", 3, set(), NOW) is None  # a swap since
    assert prebuilt.answer_for(None, stored(), "v1", 3, set(), NOW) is None
    assert prebuilt.answer_for(state(), None, "v1", 3, set(), NOW) is None
    no_bytes = Recommendations(9, [("i0", 1.0)], "v1", "e9", 900, 950)
    assert prebuilt.answer_for(state(), no_bytes, "v1", 1, set(), NOW) is None


def test_a_list_of_popular_items_only_is_not_encoded() -> None:
    assert prebuilt.encode([("p1", 1.0, REASON_TRENDING), ("p2", 0.5, REASON_TRENDING)]) == b""
    assert prebuilt.encode(ITEMS)  # a model's list, even topped up with popular items, is


def test_entries_that_do_not_match_the_list_leave_it_to_the_built_path() -> None:
    broken = stored()
    broken.wire = Recommendations.encode_wire(prebuilt.encode(ITEMS)[:-3])  # cut inside the last entry
    assert prebuilt.answer_for(state(), broken, "v1", 6, {"i0"}, NOW) is None
    assert prebuilt.select(b"\x12\x01x", [("i0", 1.0)], 1, {"zz"}) is None  # not an items entry
