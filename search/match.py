"""How well a product's text matches a query: the ranker's text features, computed the same way offline and live.

Words are analysed as the lexical index analyses them (lowercased, English stems), so "drills" matches
"Drill"; character trigrams of the whole text catch what words miss, a misspelling ("toliet" shares "toi" and
"let" with "toilet") or a run-together word ("showerhead"). Numbers count apart: a query's "3/4" or "20v" that
the title lacks says the product is another size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import tantivy

_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)

# the ranker's text features, in the order `text_features` returns them
TEXT_FEATURES = (
    "query_words_in_title",  # share of the query's stems the title holds
    "title_words_in_query",  # share of the title's stems the query holds
    "trigrams_in_title",  # share of the query's character trigrams the title holds
    "trigram_jaccard",
    "numbers_in_title",  # share of the query's numbers the title holds (1 when the query has none)
    "brand_in_query",  # the product's brand is named in the query
    "query_words",  # how many words the query has
    "title_words",
)


@lru_cache(maxsize=4096)  # queries repeat; titles are analysed once each, by `Title.of`
def stems(text: str) -> frozenset[str]:
    return frozenset(_ANALYZER.analyze(text))


@lru_cache(maxsize=4096)
def trigrams(text: str) -> frozenset[str]:
    squeezed = " " + " ".join(text.lower().split()) + " "
    return frozenset(squeezed[i : i + 3] for i in range(len(squeezed) - 2))


def _numbers(words: frozenset[str]) -> frozenset[str]:
    return frozenset(w for w in words if any(c.isdigit() for c in w))


def _share(part: frozenset[str], whole: frozenset[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


@dataclass(frozen=True)
class Query:
    """A query analysed once for all its candidates."""

    text: str
    stems: frozenset[str]
    trigrams: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Query:
        query_stems = stems(text)
        return cls(text, query_stems, trigrams(text), _numbers(query_stems))


@dataclass(frozen=True)
class Title:
    """A product's text analysed once, when the catalogue takes it in (search/catalogue.py)."""

    stems: frozenset[str]
    trigrams: frozenset[str]
    brand_stems: frozenset[str]

    @classmethod
    def of(cls, title: str, brand: str = "") -> Title:
        squeezed = " " + " ".join(title.lower().split()) + " "
        grams = frozenset(squeezed[i : i + 3] for i in range(len(squeezed) - 2))
        brand_stems = frozenset(_ANALYZER.analyze(brand)) if brand else frozenset()
        return cls(frozenset(_ANALYZER.analyze(title)), grams, brand_stems)


def text_features(query: Query, title: str | Title, brand: str = "") -> list[float]:
    """The TEXT_FEATURES of one product for `query` (its title as text, or analysed already)."""
    analysed = title if isinstance(title, Title) else Title.of(title, brand)
    title_stems, title_grams, brand_stems = analysed.stems, analysed.trigrams, analysed.brand_stems
    union = len(query.trigrams | title_grams)
    numbers = 1.0 if not query.numbers else _share(query.numbers, title_stems)
    return [
        _share(query.stems, title_stems),
        _share(title_stems, query.stems),
        _share(query.trigrams, title_grams),
        len(query.trigrams & title_grams) / union if union else 0.0,
        numbers,
        1.0 if brand_stems and brand_stems <= query.stems else 0.0,
        float(len(query.stems)),
        float(len(title_stems)),
    ]
