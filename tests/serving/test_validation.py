"""Every Recommend and Score field has a limit, and breaking one names the field."""

from __future__ import annotations

import pytest

from streamrec.protos import recommender_pb2 as pb
from streamrec.serving.validation import recommend_problem, score_problem


def req(**kw: object) -> pb.RecommendRequest:
    base: dict[str, object] = {"session_id": "s1", "k": 10}
    base.update(kw)
    return pb.RecommendRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (req(session_id=""), "session_id must not be empty"),
        (req(k=0), "k must be between 1 and 1000"),
        (req(k=1001), "k must be between 1 and 1000"),
        (req(k=-5), "got -5"),
        (req(session_id="s" * 257), "session_id is 257 characters"),
        (req(user_id="u" * 300), "user_id"),
        (req(exclude_item_ids=[""]), "exclude_item_ids must not be empty"),
        (req(exclude_item_ids=["i"] * 1001), "exclude_item_ids has 1001 entries"),
        (req(context=pb.PageContext(item_id="x" * 400)), "context.item_id"),
    ],
)
def test_bad_recommend_requests_name_the_problem(request_: pb.RecommendRequest, needle: str) -> None:
    problem = recommend_problem(request_)
    assert problem is not None and needle in problem


def test_good_requests_pass() -> None:
    assert recommend_problem(req(k=1000, exclude_item_ids=["a"], context=pb.PageContext(page="home"))) is None
    good = pb.ScoreRequest(k=5, sessions=[pb.SessionHistory(session_id="s", item_ids=["a"])])
    assert score_problem(good) is None


def test_bad_score_requests() -> None:
    assert "sessions must not be empty" in (score_problem(pb.ScoreRequest(k=5)) or "")
    empty_id = pb.ScoreRequest(k=5, sessions=[pb.SessionHistory(session_id="")])
    assert "session_id" in (score_problem(empty_id) or "")
