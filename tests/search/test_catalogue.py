"""The in-memory catalogue and one search through it: both indexes kept in step, fusion, session nudges, reasons."""

from __future__ import annotations

import numpy as np

from streamrec.search.candidates import FEATURES, retrieve
from streamrec.search.catalogue import Catalogue
from streamrec.search.dense import DenseIndex
from streamrec.search.engine import REASON_BRAND, SearchEngine, SessionSignals
from streamrec.search.fusion import fused_order, reciprocal_rank_fusion
from streamrec.search.lexical import Listing
from streamrec.search.match import Query, text_features
from tests.search.fake_encoder import TrigramEncoder

LISTINGS = [
    Listing("p1", "DEWALT 20V Cordless Drill Kit", "Dewalt", "tools", 99.0),
    Listing("p2", "Makita 18V Cordless Drill", "Makita", "tools", 180.0),
    Listing("p3", "Glacier Bay Toilet Seat", "Glacier", "bath", 25.0),
]


def catalogue() -> tuple[Catalogue, TrigramEncoder]:
    encoder = TrigramEncoder()
    built = Catalogue(encoder)
    built.apply(LISTINGS)
    return built, encoder


def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    assert fused == {"a": 1 / 2, "b": 1 / 3 + 1 / 2, "c": 1 / 3}
    assert fused_order([["a", "b"], ["b", "c"]], k=1) == ["b", "a", "c"]


def test_text_features_by_hand() -> None:
    values = text_features(Query.of("cordless drills 20v"), "DEWALT 20V Cordless Drill")
    features = dict(zip(FEATURES[6:], values, strict=True))
    assert features["query_words_in_title"] == 1.0  # drills -> drill, 20v
    assert features["title_words_in_query"] == 3 / 4  # dewalt is not in the query
    assert features["numbers_in_title"] == 1.0 and features["query_words"] == 3.0


def test_dense_index_replaces_and_removes_in_place() -> None:
    index = DenseIndex(2)
    index.upsert(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    assert [p for p, _ in index.search(np.array([1, 0]), 1)] == ["a"]
    index.upsert(["a"], np.array([[0, 1]], dtype=np.float32))
    index.remove(["b"])
    assert len(index) == 1 and index.search(np.array([1, 0]), 2)[0][0] == "a"
    assert index.search(np.array([0, 1]), 1)[0][1] > 0.99


def test_both_indexes_follow_availability_and_only_changed_text_is_encoded() -> None:
    built, encoder = catalogue()
    encoder.encoded.clear()
    built.apply([Listing("p1", "DEWALT 20V Cordless Drill Kit", "Dewalt", "tools", 89.0)])  # price only
    assert encoder.encoded == []
    built.apply([Listing("p2", "Makita 18V Cordless Drill", available=False)])
    vector = encoder.encode(["cordless drill"])[0]
    candidates = retrieve(built, "cordless drill", vector)
    assert "p2" not in candidates.product_ids and built.get("p2") is not None
    built.apply([Listing("p2", "Makita 18V Cordless Drill", "Makita", "tools", 180.0)])
    assert "p2" in retrieve(built, "cordless drill", vector).product_ids
    built.apply(deletions=["p2"])
    assert built.get("p2") is None and "p2" not in retrieve(built, "makita", encoder.encode(["makita"])[0]).product_ids


def test_a_session_that_browsed_a_brand_puts_it_first_and_says_why() -> None:
    built, encoder = catalogue()
    engine = SearchEngine(built, encoder)
    plain = engine.rank("cordless drill")
    assert plain.source == "hybrid" and {p for p, _, _ in plain.items[:2]} == {"p1", "p2"}
    second = plain.items[1][0]
    brand = built.get(second).brand.lower()  # type: ignore[union-attr]
    nudged = engine.rank("cordless drill", session=SessionSignals(brands={brand: 1.0}))
    assert nudged.items[0][0] == second and nudged.items[0][2] == REASON_BRAND
    assert SearchEngine(built).rank("cordless drill").source == "lexical"
