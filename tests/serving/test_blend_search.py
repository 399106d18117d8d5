"""Recommendations for a session that searched: its query's results woven into the session model's list."""

from __future__ import annotations

from streamrec.serving.rules import blend_search


def model(n: int) -> list[tuple[str, float, str]]:
    return [(f"m{i}", 1.0 - i / 10, "session model") for i in range(n)]


def hits(*ids: str) -> list[tuple[str, float, str]]:
    return [(i, 2.0, "from your search 'drill'") for i in ids]


def test_every_second_place_takes_a_hit_up_to_the_share() -> None:
    woven = blend_search(model(10), hits("s1", "s2", "s3", "s4"), k=6, share=1 / 3)
    assert [i for i, _, _ in woven] == ["m0", "s1", "m1", "s2", "m2", "m3"]


def test_a_hit_the_model_already_lists_is_not_repeated_and_k_is_kept() -> None:
    woven = blend_search(model(3), hits("m1", "s1", "s2"), k=6, share=0.5)
    assert [i for i, _, _ in woven] == ["m0", "s1", "m1", "s2", "m2"]  # the model ran out; m1 stayed once


def test_without_hits_the_list_is_the_model_s() -> None:
    assert blend_search(model(4), [], k=4) == model(4)
