"""One search, end to end: the query's candidates, ordered by the ranker, nudged toward the session, with reasons.

What the ranker learnt comes from graded labels that have no sessions, so the session's part is not learnt from
them: a candidate in a category or of a brand the session has been looking at gains `AFFINITY_WEIGHT` times the
session's share of them, and one the session model ranks highly gains up to `SESSION_MODEL_WEIGHT`, both in the
ranker's unit (its score, 0 .. 2: expected relevance above irrelevant). They reorder close calls and never lift
a poor text match over a good one.
Without a ranker the order is the fused lexical and dense one; without an encoder, the lexical one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamrec.search.candidates import Candidates, retrieve
from streamrec.search.catalogue import Catalogue
from streamrec.search.lexical import Filters
from streamrec.search.ranker import SearchRanker

AFFINITY_WEIGHT = 0.15
SESSION_MODEL_WEIGHT = 0.15
REASON_TITLE = "title match"
REASON_MEANING = "similar meaning"
REASON_BOTH = "title match, similar meaning"
REASON_CATEGORY = "in a category you browsed"
REASON_BRAND = "a brand you browsed"
REASON_SESSION = "fits your session"


@dataclass(frozen=True)
class SessionSignals:
    """What the session tells search: its shares of categories and brands, and the session model's scores."""

    categories: Mapping[str, float] = field(default_factory=dict)
    brands: Mapping[str, float] = field(default_factory=dict)
    model_scores: Mapping[str, float] = field(default_factory=dict)  # item -> 0 .. 1, the model's best 1


@dataclass(frozen=True)
class Ranked:
    """Candidates best first: (product id, score, reason), and how they were ordered."""

    items: list[tuple[str, float, str]]
    source: str  # "ranker", "hybrid" or "lexical"


class SearchEngine:
    def __init__(self, catalogue: Catalogue, encoder: object | None = None, ranker: SearchRanker | None = None) -> None:
        self.catalogue, self.encoder, self.ranker = catalogue, encoder, ranker

    def rank(self, query: str, filters: Filters | None = None, session: SessionSignals | None = None) -> Ranked:
        vector = self.encoder.encode([query])[0] if self.encoder is not None else None  # type: ignore[attr-defined]
        candidates = retrieve(self.catalogue, query, vector, filters)
        if not candidates.product_ids:
            return Ranked([], self._source())
        if self.ranker is not None:
            scores = self.ranker.predict(candidates.features)[1].astype(np.float64)
        else:
            scores = candidates.column("fused").astype(np.float64)
        boosts, boost_reasons = self._session_boosts(candidates.product_ids, session)
        total = scores + boosts
        order = np.argsort(-total, kind="stable")
        reasons = _text_reasons(candidates)
        items = [(candidates.product_ids[i], float(total[i]), boost_reasons[i] or reasons[i]) for i in order.tolist()]
        return Ranked(items, self._source())

    def _source(self) -> str:
        if self.ranker is not None and self.encoder is not None:
            return "ranker"
        return "hybrid" if self.encoder is not None else "lexical"

    def _session_boosts(
        self, product_ids: Sequence[str], session: SessionSignals | None
    ) -> tuple[np.ndarray, list[str | None]]:
        boosts = np.zeros(len(product_ids))
        reasons: list[str | None] = [None] * len(product_ids)
        if session is None:
            return boosts, reasons
        for row, product_id in enumerate(product_ids):
            listing = self.catalogue.get(product_id)
            if listing is None:
                continue
            parts = [
                (AFFINITY_WEIGHT * session.categories.get(listing.category, 0.0), REASON_CATEGORY),
                (AFFINITY_WEIGHT * session.brands.get(listing.brand.lower(), 0.0), REASON_BRAND),
                (SESSION_MODEL_WEIGHT * session.model_scores.get(product_id, 0.0), REASON_SESSION),
            ]
            boosts[row] = sum(weight for weight, _ in parts)
            weight, reason = max(parts)
            if weight > 0:
                reasons[row] = reason
        return boosts, reasons


def _text_reasons(candidates: Candidates) -> list[str]:
    lexical, dense = set(candidates.lexical), set(candidates.dense)
    out = []
    for product_id in candidates.product_ids:
        if product_id in lexical and product_id in dense:
            out.append(REASON_BOTH)
        elif product_id in lexical:
            out.append(REASON_TITLE)
        else:
            out.append(REASON_MEANING)
    return out
