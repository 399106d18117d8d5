"""The catalogue's dense index: approximate nearest titles by embedding (faiss's HNSW), kept current by replacement.

faiss-cpu was chosen by measurement over usearch (docs/search.md): at the same recall of the 100 nearest it
answered in half the time and built twice as fast, and usearch imported before onnxruntime crashed the process
here. faiss's HNSW cannot remove a vector, so a replaced or deleted product's vector stays in the graph marked
dead: searches fetch a few more and drop the dead, and once the dead are a fifth of the index it is rebuilt from
the living. Vectors are L2-normalised embeddings (search/encoder.py), so inner product is cosine similarity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

# faiss announces at INFO which of its builds (AVX2, AVX-512, generic) it loaded; that is not the user's news
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
import faiss  # noqa: E402

NEIGHBOURS = 16  # HNSW graph degree (M)
EF_CONSTRUCTION = 128
EF_SEARCH = 128  # 64 answered in half the time at 0.94 recall of the 100 nearest; 128 reached 0.98
REBUILD_SHARE = 0.2  # rebuild once this share of the vectors are dead ...
REBUILD_MIN = 1000  # ... and at least this many


class DenseIndex:
    """Product id -> embedding, searchable by a query embedding; thread-safe."""

    def __init__(self, dim: int, threads: int = 1) -> None:
        self.dim = dim
        faiss.omp_set_num_threads(threads)  # one query at a time is fastest on one thread
        self._lock = threading.Lock()
        self._index = self._new_index()
        self._slot: dict[str, int] = {}  # product id -> its living vector's position in the index
        self._owner: list[str | None] = []  # position -> product id, None once dead
        self._dead = 0

    def _new_index(self) -> faiss.IndexHNSWFlat:
        index = faiss.IndexHNSWFlat(self.dim, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.hnsw.efSearch = EF_SEARCH
        return index

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._slot

    def upsert(self, product_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace each product's vector ([n, dim] float32)."""
        if not len(product_ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(product_ids), self.dim)
        with self._lock:
            self._kill(product_ids)
            start = self._index.ntotal
            self._index.add(vectors)
            for offset, product_id in enumerate(product_ids):
                self._slot[product_id] = start + offset
                self._owner.append(product_id)
            self._maybe_rebuild()

    def remove(self, product_ids: Sequence[str]) -> None:
        with self._lock:
            self._kill(product_ids)
            self._maybe_rebuild()

    def _kill(self, product_ids: Sequence[str]) -> None:
        for product_id in product_ids:
            slot = self._slot.pop(product_id, None)
            if slot is not None:
                self._owner[slot] = None
                self._dead += 1

    def _maybe_rebuild(self) -> None:
        if self._dead < max(REBUILD_MIN, REBUILD_SHARE * self._index.ntotal):
            return
        living = sorted(self._slot.items(), key=lambda kv: kv[1])
        vectors = np.stack([self._index.reconstruct(slot) for _, slot in living]) if living else None
        self._index = self._new_index()
        if vectors is not None:
            self._index.add(vectors)
        self._slot = {product_id: position for position, (product_id, _) in enumerate(living)}
        self._owner = [product_id for product_id, _ in living]
        self._dead = 0

    def vectors(self, product_ids: Sequence[str]) -> np.ndarray:
        """[n, dim] vectors of `product_ids`, zeros for one the index does not hold (so its similarity is 0)."""
        out = np.zeros((len(product_ids), self.dim), dtype=np.float32)
        with self._lock:
            rows = [(i, self._slot[p]) for i, p in enumerate(product_ids) if p in self._slot]
            if rows:
                found = self._index.reconstruct_batch(np.array([slot for _, slot in rows], dtype=np.int64))
                out[[i for i, _ in rows]] = found
        return out

    def search(self, query: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """The `limit` nearest living (product id, cosine similarity), nearest first."""
        with self._lock:
            if not self._slot:
                return []
            wanted = min(self._index.ntotal, limit + min(self._dead, 3 * limit))
            scores, positions = self._index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), wanted)
            owner = self._owner
            hits = [(owner[p], float(s)) for p, s in zip(positions[0], scores[0], strict=True) if p >= 0 and owner[p]]
        return [(product_id, score) for product_id, score in hits[:limit] if product_id is not None]
