"""The searchable catalogue in memory: listings by id, their lexical index and, with an encoder, their dense index.

One `apply` takes a batch of changes (products added, changed, made unavailable, deleted) into both indexes and
makes them searchable before it returns, so a product event is searchable as soon as it is applied. A changed
product is re-encoded only when its text changed; an unavailable one leaves both indexes (nothing may find it)
but keeps its listing, so that it comes back without a new record of its text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from streamrec.search.dense import DenseIndex
from streamrec.search.lexical import LexicalIndex, Listing
from streamrec.search.match import Title


class Encoder(Protocol):
    """What the catalogue needs of search/encoder.py's TextEncoder."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def listing_text(listing: Listing) -> str:
    """The text a listing is encoded from: its title, then brand and category where they add words."""
    parts = [listing.title]
    for extra in (listing.brand, listing.category):
        if extra and extra.lower() not in listing.title.lower():
            parts.append(extra)
    return " ".join(parts)


class Catalogue:
    def __init__(self, encoder: Encoder | None = None, stemmed: bool = True, fuzzy: bool = True) -> None:
        self.encoder = encoder
        self.lexical = LexicalIndex(stemmed=stemmed, fuzzy=fuzzy)
        self.dense = DenseIndex(encoder.dim) if encoder is not None else None
        self.listings: dict[str, Listing] = {}
        self.titles: dict[str, Title] = {}  # each listing's text analysed once, for the ranker's text features
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.listings)

    def get(self, product_id: str) -> Listing | None:
        return self.listings.get(product_id)

    def title(self, product_id: str) -> Title | None:
        return self.titles.get(product_id)

    def apply(
        self,
        upserts: Iterable[Listing] = (),
        deletions: Iterable[str] = (),
        vectors: np.ndarray | None = None,
    ) -> None:
        """Take the changes into both indexes and make them searchable. `vectors` (aligned with `upserts`) are the
        listings' embeddings when the caller has them already (evaluation encodes a whole catalogue once)."""
        upserts, deletions = list(upserts), list(deletions)
        with self._lock:
            self.lexical.upsert(upserts)
            self.lexical.remove(deletions)
            if self.dense is not None:
                self._apply_dense(upserts, deletions, vectors)
            for listing in upserts:
                self.titles[listing.product_id] = Title.of(listing.title, listing.brand)
                self.listings[listing.product_id] = listing
            for product_id in deletions:
                self.listings.pop(product_id, None)
                self.titles.pop(product_id, None)
            self.lexical.refresh()

    def _apply_dense(self, upserts: list[Listing], deletions: list[str], vectors: np.ndarray | None) -> None:
        assert self.dense is not None and self.encoder is not None
        gone = [listing.product_id for listing in upserts if not listing.available] + deletions
        self.dense.remove(gone)
        shown = [i for i, listing in enumerate(upserts) if listing.available]
        if vectors is None:
            # a new or changed text, or one whose vector left with its availability and is shown again
            to_encode = [i for i in shown if self._text_changed(upserts[i]) or upserts[i].product_id not in self.dense]
            if to_encode:
                encoded = self.encoder.encode([listing_text(upserts[i]) for i in to_encode])
                self.dense.upsert([upserts[i].product_id for i in to_encode], encoded)
        elif shown:
            self.dense.upsert([upserts[i].product_id for i in shown], np.asarray(vectors)[shown])

    def _text_changed(self, listing: Listing) -> bool:
        before = self.listings.get(listing.product_id)
        return before is None or listing_text(before) != listing_text(listing)
