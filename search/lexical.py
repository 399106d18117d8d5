"""The catalogue's lexical index: BM25 over title, brand and category in tantivy, updated product by product.

tantivy was chosen over bm25s by measurement on the Home Depot catalogue (docs/search.md): it updates in place
(delete and add a document, commit, reload: what a product stream needs; bm25s rebuilds the whole index) and
answers a query in a fraction of a millisecond. The index lives in memory; the scorer rebuilds it from the
catalogue in Redis at start-up and then follows its change stream.

Queries are never given to tantivy's query syntax as typed (a title like `3/4 in. x 10 ft.` or a stray `"` or
`:` would be syntax): they are cut into words here, and each word becomes a term query on every text field,
so any word may match (BM25 sums the matches). With `fuzzy`, a word the catalogue does not hold (a misspelling:
"toliet") also matches the words one edit away, at a lower weight.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import tantivy

TEXT_FIELDS = ("title", "brand", "category")
WORD = re.compile(r"\w+", re.UNICODE)
FUZZY_BOOST = 0.5  # a word one edit away counts half as much as the word itself
MIN_FUZZY_LENGTH = 4  # shorter words have too many neighbours one edit away ("tile": "tie", "file", "title")
HEAP_BYTES = 50_000_000  # tantivy's indexing buffer; it flushes to a segment when full


@dataclass(frozen=True)
class Listing:
    """What search knows of a product: its text, its price, and whether it may be shown."""

    product_id: str
    title: str
    brand: str = ""
    category: str = ""
    price: float | None = None
    available: bool = True


@dataclass(frozen=True)
class Filters:
    """Keep products of any of `brands` (case-insensitive) and any of `categories`, priced within the bounds."""

    categories: frozenset[str] = field(default_factory=frozenset)
    brands: frozenset[str] = field(default_factory=frozenset)
    min_price: float | None = None
    max_price: float | None = None

    def __bool__(self) -> bool:
        return bool(self.categories or self.brands or self.min_price is not None or self.max_price is not None)


def words(text: str) -> list[str]:
    """A text's words, lowercased: how queries are cut before they reach the index."""
    return [w.lower() for w in WORD.findall(text)]


class LexicalIndex:
    """BM25 over the listings' title, brand and category; `stemmed` matches English word forms ("drills" finds
    "drill"). Writes are buffered until `refresh()`; searches see the last refresh. Thread-safe: one writer at a
    time, any number of searches."""

    def __init__(self, stemmed: bool = True, fuzzy: bool = True) -> None:
        self.stemmed, self.fuzzy = stemmed, fuzzy
        tokenizer = "en_stem" if stemmed else "default"
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("product_id", stored=True, tokenizer_name="raw")
        for name in TEXT_FIELDS:
            builder.add_text_field(name, stored=False, tokenizer_name=tokenizer)
        builder.add_text_field("brand_key", stored=False, tokenizer_name="raw")
        builder.add_text_field("category_key", stored=False, tokenizer_name="raw")
        builder.add_float_field("price", stored=False, indexed=True, fast=True)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema)
        self._writer = self.index.writer(heap_size=HEAP_BYTES, num_threads=1)
        self._write_lock = threading.Lock()
        self._searcher = self.index.searcher()

    def upsert(self, listings: Iterable[Listing]) -> None:
        """Replace each listing's document; an unavailable listing is removed (it must not be found)."""
        with self._write_lock:
            for listing in listings:
                self._writer.delete_documents_by_term("product_id", listing.product_id)
                if listing.available:
                    self._writer.add_document(self._document(listing))

    def remove(self, product_ids: Iterable[str]) -> None:
        with self._write_lock:
            for product_id in product_ids:
                self._writer.delete_documents_by_term("product_id", product_id)

    def refresh(self) -> None:
        """Make every write so far searchable."""
        with self._write_lock:
            self._writer.commit()
            self.index.reload()
            self._searcher = self.index.searcher()

    def __len__(self) -> int:
        return int(self._searcher.num_docs)

    def search(self, query: str, limit: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """The best `limit` (product id, BM25 score) for `query`, best first; [] when no word matches."""
        text = self._text_query(words(query))
        if text is None:
            return []
        must = [text, *self._filter_queries(filters)] if filters else [text]
        combined = text if len(must) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in must])
        searcher = self._searcher
        hits = searcher.search(combined, limit, count=False).hits
        return [(searcher.doc(address)["product_id"][0], float(score)) for score, address in hits]

    def _document(self, listing: Listing) -> tantivy.Document:
        doc = tantivy.Document(
            product_id=listing.product_id,
            title=listing.title,
            brand=listing.brand,
            category=listing.category,
            brand_key=listing.brand.lower(),
            category_key=listing.category,
        )
        if listing.price is not None:
            doc.add_float("price", float(listing.price))
        return doc

    def _text_query(self, query_words: Sequence[str]) -> tantivy.Query | None:
        if not query_words:
            return None
        parsed = self.index.parse_query(" ".join(query_words), list(TEXT_FIELDS))
        if not self.fuzzy:
            return parsed
        unknown = [w for w in dict.fromkeys(query_words) if len(w) >= MIN_FUZZY_LENGTH and not self._known(w)]
        if not unknown:
            return parsed
        near = [
            (tantivy.Occur.Should, tantivy.Query.boost_query(self._fuzzy(name, w), FUZZY_BOOST))
            for w in unknown
            for name in TEXT_FIELDS
        ]
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, parsed), *near])

    def _known(self, word: str) -> bool:
        """Whether the catalogue holds `word` in any text field (as the index analyses it)."""
        terms = self.index.parse_query(word, list(TEXT_FIELDS))
        return bool(self._searcher.search(terms, 1, count=False).hits)

    def _fuzzy(self, name: str, word: str) -> tantivy.Query:
        # the stemmed index holds stems; a misspelt word's stem is close to the right word's stem too
        return tantivy.Query.fuzzy_term_query(self.schema, name, word, distance=1, transposition_cost_one=True)

    def _filter_queries(self, filters: Filters) -> list[tantivy.Query]:
        queries = []
        for name, values in (("brand_key", {b.lower() for b in filters.brands}), ("category_key", filters.categories)):
            if values:
                either = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, name, v)) for v in values]
                queries.append(tantivy.Query.boolean_query(either))
        if filters.min_price is not None or filters.max_price is not None:
            queries.append(
                tantivy.Query.range_query(
                    self.schema, "price", tantivy.FieldType.Float, filters.min_price, filters.max_price
                )
            )
        return queries
