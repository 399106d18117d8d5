"""A query's candidates and their features: the lexical and dense lists, fused, and what the ranker reads of each.

The same function builds the features for the scorer's live answer and for training and evaluating the ranker,
so the ranker never sees a feature computed two ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.search.catalogue import Catalogue
from streamrec.search.fusion import RRF_K, fused_order, reciprocal_rank_fusion
from streamrec.search.lexical import Filters
from streamrec.search.match import TEXT_FEATURES, Query, text_features

RETRIEVE = 100  # from each list: their union, in fused order (at most 200), is what the ranker orders
RETRIEVAL_FEATURES = (
    "bm25",  # 0 outside the lexical list
    "bm25_share",  # of the query's best BM25
    "lexical_rank",  # 1 / rank in the lexical list, 0 outside it
    "dense_similarity",  # cosine of query and title embeddings (every candidate)
    "dense_rank",  # 1 / rank in the dense list, 0 outside it
    "fused",  # reciprocal-rank fusion of the two lists, scaled so that rank 1 in both is 1
)
FEATURES = RETRIEVAL_FEATURES + TEXT_FEATURES


@dataclass(frozen=True)
class Candidates:
    query: str
    product_ids: list[str]  # in fused order
    features: np.ndarray  # [n, len(FEATURES)] float32, rows aligned with product_ids
    lexical: list[str]  # the lexical list, best first
    dense: list[str]  # the dense list, best first
    retrieved: int  # how many of product_ids retrieval found (the rest are the caller's `extra`)

    def column(self, name: str) -> np.ndarray:
        return self.features[:, FEATURES.index(name)]


def retrieve(
    catalogue: Catalogue,
    query: str,
    query_vector: np.ndarray | None,
    filters: Filters | None = None,
    limit: int = RETRIEVE,
    extra: Sequence[str] = (),
) -> Candidates:
    """The query's lexical and dense lists, fused, with every candidate's features; `extra` product ids (the
    judged products, when training and evaluating) are added after the `retrieved` ones."""
    lexical = catalogue.lexical.search(query, limit, filters)
    dense: list[tuple[str, float]] = []
    if query_vector is not None and catalogue.dense is not None:
        dense = catalogue.dense.search(query_vector, limit if not filters else limit * 4)
        if filters:
            brands = frozenset(b.lower() for b in filters.brands)
            dense = [(p, s) for p, s in dense if _passes(catalogue, p, filters, brands)][:limit]
    lexical_ids, dense_ids = [p for p, _ in lexical], [p for p, _ in dense]
    # a product deleted while this query ran may still be in an index's last view: it is left out here
    order = [p for p in fused_order([lexical_ids, dense_ids]) if catalogue.get(p) is not None]
    retrieved = len(order)
    seen = set(order)
    order += [p for p in dict.fromkeys(extra) if p not in seen and catalogue.get(p) is not None]
    features = _features(catalogue, query, query_vector, order, lexical, dense)
    return Candidates(query, order, features, lexical_ids, dense_ids, retrieved)


def _passes(catalogue: Catalogue, product_id: str, filters: Filters, brands: frozenset[str]) -> bool:
    """Whether a dense hit passes `filters`, as the lexical index filters (`brands`: the filter's, lowercased)."""
    listing = catalogue.get(product_id)
    if listing is None:
        return False
    if filters.categories and listing.category not in filters.categories:
        return False
    if brands and listing.brand.lower() not in brands:
        return False
    if filters.min_price is None and filters.max_price is None:
        return True
    if listing.price is None:
        return False
    low = filters.min_price if filters.min_price is not None else -np.inf
    high = filters.max_price if filters.max_price is not None else np.inf
    return low <= listing.price <= high


def _features(
    catalogue: Catalogue,
    query: str,
    query_vector: np.ndarray | None,
    order: list[str],
    lexical: list[tuple[str, float]],
    dense: list[tuple[str, float]],
) -> np.ndarray:
    bm25 = dict(lexical)
    best_bm25 = max(bm25.values(), default=0.0) or 1.0
    lexical_rank = {p: 1.0 / r for r, (p, _) in enumerate(lexical, start=1)}
    dense_rank = {p: 1.0 / r for r, (p, _) in enumerate(dense, start=1)}
    similarity = dict(dense)
    fused = reciprocal_rank_fusion([[p for p, _ in lexical], [p for p, _ in dense]])
    top_fused = 2.0 / (RRF_K + 1)
    analysed = Query.of(query)
    if query_vector is not None and catalogue.dense is not None:
        unseen = [p for p in order if p not in similarity]
        similarity |= dict(zip(unseen, (catalogue.dense.vectors(unseen) @ query_vector).tolist(), strict=True))
    rows = np.zeros((len(order), len(FEATURES)), dtype=np.float32)
    for row, product_id in enumerate(order):
        listing = catalogue.get(product_id)
        if listing is None:  # deleted between the retrieval above and here: a row of zeros ranks it last
            continue
        cosine = similarity.get(product_id)
        score = bm25.get(product_id, 0.0)
        rows[row, : len(RETRIEVAL_FEATURES)] = (
            score,
            score / best_bm25,
            lexical_rank.get(product_id, 0.0),
            cosine or 0.0,
            dense_rank.get(product_id, 0.0),
            fused.get(product_id, 0.0) / top_fused,
        )
        title = catalogue.title(product_id) or listing.title
        rows[row, len(RETRIEVAL_FEATURES) :] = text_features(analysed, title, listing.brand)
    return rows
