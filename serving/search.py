"""Search in the scorer: the catalogue kept current from Redis, and one query answered for its session.

At start the scorer reads the whole catalogue the worker keeps in Redis (features/catalog_store.py) into its
in-memory indexes, then follows the catalogue's change stream in a thread: a change is searchable once that
thread has applied it, a few milliseconds after the worker wrote it. Parts that are missing degrade, and say so
in the answer (`fallback`), the metrics and the log: no exported encoder means lexical matches only, no ranker
means the fused lexical and dense order.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from streamrec.errors import ArtifactError
from streamrec.features.catalog_store import CatalogGap, load_catalog, read_changes
from streamrec.features.session_store import SessionState
from streamrec.protos import catalog_pb2
from streamrec.protos import recommender_pb2 as pb
from streamrec.redis import RedisError, is_cluster_url, sync_client, sync_cluster_client
from streamrec.search.catalogue import Catalogue
from streamrec.search.engine import Ranked, SearchEngine, SessionSignals
from streamrec.search.lexical import Filters, Listing
from streamrec.search.ranker import RANKER_FILE, SearchRanker
from streamrec.serving import metrics
from streamrec.serving.rules import keep_by_rules

log = logging.getLogger(__name__)
FOLLOW_BLOCK_MS = 1000  # how long one read of the change stream waits for a change
RETRY_S = 1.0  # after a failed read of Redis
# why a part of search cannot load: its files (ArtifactError, OSError), or ONNX Runtime refusing them
# (RuntimeError kinds, ValueError)
UNLOADABLE = (ArtifactError, OSError, RuntimeError, ValueError)
LOAD_CHUNK = 1000  # products per step of the start-up load: each step is searchable before the next is encoded


def listing_of(product: catalog_pb2.Product) -> Listing:
    return Listing(
        product.product_id,
        product.title,
        product.brand,
        product.category,
        product.price if product.HasField("price") else None,
        product.available,
    )


def filters_of(request: pb.SearchRequest) -> Filters | None:
    f = request.filters
    filters = Filters(
        frozenset(f.categories),
        frozenset(f.brands),
        f.min_price if f.HasField("min_price") else None,
        f.max_price if f.HasField("max_price") else None,
    )
    return filters or None


class CatalogueFeed:
    """The catalogue from Redis into `catalogue`, then every change as it comes, in a daemon thread."""

    def __init__(self, catalogue: Catalogue, redis_url: str, project: str) -> None:
        self.catalogue, self.project = catalogue, project
        # the catalogue's keys share one hash tag, so one node of a cluster holds them all; the socket timeout
        # outlasts a blocking read of the change stream
        timeout_s = FOLLOW_BLOCK_MS / 1000 + 5
        self.client: Any = (
            sync_cluster_client(redis_url, timeout_s)
            if is_cluster_url(redis_url)
            else sync_client(redis_url, timeout_s)
        )
        self.last_id = "0-0"
        self._frozen_at = 0  # catalogue size at the last gc.freeze
        self.loaded = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalogue-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def load(self) -> int:
        """Read the whole catalogue (at start, or after the change stream was trimmed past our place)."""
        products, self.last_id = load_catalog(self.client, self.project)
        listings = [listing_of(p) for p in products.values()]
        for start in range(0, len(listings), LOAD_CHUNK):
            self.catalogue.apply(listings[start : start + LOAD_CHUNK])
            metrics.CATALOGUE_PRODUCTS.set(len(self.catalogue))
        self._freeze_if_grown()
        self.loaded.set()
        log.info("search catalogue: %d products", len(products))
        return len(products)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.loaded.is_set():
                    self.load()
                self._follow_once()
            except CatalogGap as exc:  # the change stream was trimmed past our place: read it all again
                log.warning("catalogue feed: %s; reloading the catalogue", exc)
                self.loaded.clear()
            except RedisError as exc:
                log.warning("catalogue feed: Redis unavailable (%s); search answers from what it holds", exc)
                self._stop.wait(RETRY_S)

    def _follow_once(self) -> None:
        changes = read_changes(self.client, self.project, self.last_id, FOLLOW_BLOCK_MS)
        if not changes:
            return
        upserts = [listing_of(p) for _, _, p in changes if p is not None]
        deletions = [product_id for _, product_id, p in changes if p is None]
        self.catalogue.apply(upserts, deletions)
        now_ms = time.time() * 1000
        for _, _, product in changes:
            if product is not None and product.updated_ms:
                metrics.CATALOGUE_LAG.observe(max(0.0, now_ms - product.updated_ms) / 1000)
        self.last_id = changes[-1][0]
        metrics.CATALOGUE_CHANGES.inc(len(changes))
        metrics.CATALOGUE_PRODUCTS.set(len(self.catalogue))
        self._freeze_if_grown()

    def _freeze_if_grown(self) -> None:
        """The catalogue's objects (a listing and its analysed text per product) live as long as the process:
        frozen, the cyclic collector stops walking them at every full collection, a pause a search would wait on.
        Done each time the catalogue has grown by LOAD_CHUNK products since the last time."""
        if len(self.catalogue) - self._frozen_at < LOAD_CHUNK:
            return
        gc.collect()
        gc.freeze()
        self._frozen_at = len(self.catalogue)


def session_signals(catalogue: Catalogue, state: SessionState | None, model_scores: dict[str, float]) -> SessionSignals:
    """The session's shares of categories and brands among the products it viewed, carted or bought."""
    if state is None:
        return SessionSignals(model_scores=model_scores)
    seen = [catalogue.get(item) for item in state.items + state.carts + state.purchases]
    listings = [listing for listing in seen if listing is not None]
    if not listings:
        return SessionSignals(model_scores=model_scores)
    categories: dict[str, float] = {}
    brands: dict[str, float] = {}
    share = 1.0 / len(listings)
    for listing in listings:
        if listing.category:
            categories[listing.category] = categories.get(listing.category, 0.0) + share
        if listing.brand:
            brands[listing.brand.lower()] = brands.get(listing.brand.lower(), 0.0) + share
    return SessionSignals(categories, brands, model_scores)


@dataclass
class SearchParts:
    """What answers Search: the engine, and which of its parts are missing."""

    engine: SearchEngine
    feed: CatalogueFeed
    missing: tuple[str, ...]  # "encoder", "ranker"

    def answer(
        self, request: pb.SearchRequest, state: SessionState | None, model_scores: dict[str, float], cap: int
    ) -> pb.SearchResponse:
        ranked: Ranked = self.engine.rank(
            request.query, filters_of(request), session_signals(self.engine.catalogue, state, model_scores)
        )
        excluded = set(request.exclude_item_ids)
        if state is not None:
            excluded |= set(state.purchases)
        catalogue = self.engine.catalogue
        categories = {item: listing.category for item, _, _ in ranked.items if (listing := catalogue.get(item))}
        kept = keep_by_rules(ranked.items, request.k, excluded, categories, cap)
        response = pb.SearchResponse(
            catalogue_products=len(catalogue), fallback=bool(self.missing), source=ranked.source
        )
        for item, score, reason in kept:
            listing = catalogue.get(item)
            if listing is None:  # deleted since it was ranked
                continue
            hit = response.items.add(
                item_id=item,
                title=listing.title,
                brand=listing.brand,
                category=listing.category,
                score=score,
                reason=reason,
            )
            if listing.price is not None:
                hit.price = listing.price
        metrics.SEARCH_SOURCES.labels(ranked.source).inc()
        for part in self.missing:
            metrics.SEARCH_FALLBACKS.labels(part).inc()
        return response


def build_search(
    redis_url: str, project: str, search_dir: Path, encoder_dir: Path | None, variant: Literal["fp32", "int8"]
) -> SearchParts:
    """The engine with whatever parts are there; each missing one is logged once, here."""
    from streamrec.search.encoder import TextEncoder, default_encoder_dir

    missing: list[str] = []
    encoder = None
    where = encoder_dir or default_encoder_dir()
    try:
        encoder = TextEncoder.load(where, variant)
    except UNLOADABLE as exc:
        missing.append("encoder")
        log.warning(
            "search without the text encoder (%s): lexical matches only; export it with "
            "`streamrec search export-encoder`",
            exc,
        )
    ranker = None
    if encoder is not None:
        try:
            ranker = SearchRanker.load(search_dir / RANKER_FILE)
        except UNLOADABLE as exc:
            missing.append("ranker")
            log.warning(
                "search without its ranker (%s): fused lexical and dense order; train it with `streamrec search train`",
                exc,
            )
    catalogue = Catalogue(encoder)
    feed = CatalogueFeed(catalogue, redis_url, project)
    return SearchParts(SearchEngine(catalogue, encoder, ranker), feed, tuple(missing))
