"""The lexical index: stems, misspellings, filters, availability and in-place updates, on hand-made listings."""

from __future__ import annotations

from streamrec.search.lexical import Filters, LexicalIndex, Listing

LISTINGS = [
    Listing("p1", "DEWALT 20V Cordless Drill Kit", "Dewalt", "tools", 99.0),
    Listing("p2", "Glacier Bay Elongated Toilet Seat in White", "Glacier", "bath", 25.0),
    Listing("p3", "Makita 18V Cordless Drills Combo", "Makita", "tools", 180.0),
    Listing("p4", "Behr Interior Paint 1 gal.", "Behr", "paint", None),
]


def index(**options: bool) -> LexicalIndex:
    built = LexicalIndex(**options)
    built.upsert(LISTINGS)
    built.refresh()
    return built


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [p for p, _ in hits]


def test_stems_match_word_forms_and_plain_bm25_does_not() -> None:
    assert set(ids(index().search("drills", 10))) == {"p1", "p3"}
    assert ids(index(stemmed=False, fuzzy=False).search("drills", 10)) == ["p3"]


def test_a_misspelt_word_matches_one_edit_away_only_with_fuzzy() -> None:
    assert ids(index().search("toliet seat", 10))[0] == "p2"
    assert ids(index(fuzzy=False).search("toliet", 10)) == []


def test_query_syntax_is_text_and_an_empty_query_finds_nothing() -> None:
    built = index()
    assert ids(built.search('drill: "kit" AND (20v', 10))[0] == "p1"
    assert built.search("  !!! ", 10) == []


def test_filters_by_brand_category_and_price() -> None:
    built = index()
    assert ids(built.search("cordless drill", 10, Filters(brands=frozenset({"MAKITA"})))) == ["p3"]
    assert ids(built.search("cordless drill", 10, Filters(categories=frozenset({"bath"})))) == []
    assert ids(built.search("cordless drill", 10, Filters(max_price=100.0))) == ["p1"]
    assert ids(built.search("paint", 10, Filters(min_price=1.0))) == []  # no price: out when a bound is set


def test_unavailable_or_removed_products_leave_at_once_and_come_back() -> None:
    built = index()
    built.upsert([Listing("p1", "DEWALT 20V Cordless Drill Kit", available=False)])
    built.remove(["p3"])
    built.refresh()
    assert built.search("drill", 10) == [] and len(built) == 2
    built.upsert([Listing("p1", "DEWALT 20V Hammer Drill")])
    built.refresh()
    assert ids(built.search("hammer", 10)) == ["p1"] and ids(built.search("kit", 10)) == []
