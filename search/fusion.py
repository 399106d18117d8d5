"""Reciprocal-rank fusion: one ranking from several, each item scored by the sum of 1 / (k + its rank) in each."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # Cormack, Clarke & Büttcher (2009): 60 works across collections; small k lets one list's top dominate


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Item -> fused score over `rankings` (each best first); an item missing from a ranking gets nothing there."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def fused_order(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[str]:
    """The items of `rankings` by fused score, best first; ties keep the order of first appearance."""
    fused = reciprocal_rank_fusion(rankings, k)
    return sorted(fused, key=lambda item: -fused[item])
