"""The second stage: an MLP over retrieval, stream, session, category and price features reorders the candidates.

`candidate_features` is the one definition of the ranker's input, used online here and offline by
training/ranker_features.py, so training and serving compute the same numbers from the same inputs. The ranker
itself is `ranker.onnx` in the model version (input `features` float32 [N, F], output `scores` float32 [N], the
feature normalisation inside the graph); `ranker.json` names the features in order, and a version whose names
differ from FEATURES is refused rather than fed the wrong columns.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from features.session_store import SessionState
from serving.item_cache import ITEM_BLOCK, ItemFeatureCache
from streamrec.artifact import load_manifest, sha256_file
from streamrec.errors import ArtifactError, ChecksumMismatch

log = logging.getLogger(__name__)
ORT_ERRORS = (ort_errors.Fail, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf, ort_errors.NoSuchFile,
              ort_errors.InvalidArgument)  # fmt: skip
RANKER_MODEL = "ranker.onnx"
RANKER_INFO = "ranker.json"
ITEM_META = "item_meta.json"  # {"categories": {item: category}, "prices": {item: price}} (serving/runtime.py too)
MAX_HISTORY = 50  # the stream keeps a session's last 50 viewed items (features.session_store.MAX_SESSION_ITEMS)

RETRIEVAL = ("retrieval_score", "retrieval_gap", "log_retrieval_rank")
SESSION = ("in_session", "recency", "log_session_count")
CATEGORY = ("category_known", "same_category_as_last", "category_share")
PRICE = ("price_known", "log_price", "log_price_ratio")
FEATURES: tuple[str, ...] = RETRIEVAL + ITEM_BLOCK + SESSION + CATEGORY + PRICE
_ITEM = len(RETRIEVAL)
_SESSION = _ITEM + len(ITEM_BLOCK)
_CATEGORY = _SESSION + len(SESSION)
_PRICE = _CATEGORY + len(CATEGORY)


@dataclass(frozen=True)
class ItemMeta:
    """Catalogue facts by item: category code (-1 unknown) and price (NaN unknown); row 0 is the unknown item."""

    index: dict[str, int]
    category: np.ndarray  # int64
    price: np.ndarray  # float64

    @classmethod
    def from_maps(cls, categories: Mapping[str, str], prices: Mapping[str, float]) -> ItemMeta:
        items = sorted(set(categories) | set(prices))
        codes = {c: i for i, c in enumerate(sorted(set(categories.values())))}
        category = np.array([-1] + [codes.get(categories.get(i, ""), -1) for i in items], dtype=np.int64)
        price = np.array([math.nan] + [float(prices.get(i, math.nan)) for i in items], dtype=np.float64)
        return cls({item: row + 1 for row, item in enumerate(items)}, category, price)

    @classmethod
    def load(cls, version_dir: Path) -> ItemMeta:
        path = version_dir / ITEM_META
        raw = json.loads(path.read_text()) if path.is_file() else {}
        return cls.from_maps(raw.get("categories", {}), raw.get("prices", {}))

    def lookup(self, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        get = self.index.get
        rows = [get(item, 0) for item in items]
        return self.category[rows], self.price[rows]


def candidate_features(
    history: Sequence[str], items: Sequence[str], scores: Sequence[float], item_rows: np.ndarray, meta: ItemMeta
) -> np.ndarray:
    """Features [len(items), len(FEATURES)] float32 of a session's candidates, given in retrieval order.

    `history` is the session's viewed items, oldest first (the stream's state.items); `item_rows` the
    candidates' ITEM_BLOCK rows. Retrieval: score, gap to the best score, log rank. Session: seen before,
    1/steps since last seen, log count. Category (when known): same as the last viewed item's, share of the
    session in it. Price (when known): log price and log ratio to the session's mean known price.
    """
    n = len(items)
    x = np.zeros((n, len(FEATURES)), dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    x[:, 0] = s
    if n:
        x[:, 1] = s - s.max()
    x[:, 2] = np.log1p(np.arange(n))
    x[:, _ITEM:_SESSION] = item_rows
    history = list(history)[-MAX_HISTORY:]
    last_seen: dict[str, int] = {}
    count: dict[str, int] = {}
    for pos, item in enumerate(history):
        last_seen[item] = pos
        count[item] = count.get(item, 0) + 1
    steps = len(history) - np.array([last_seen.get(item, len(history)) for item in items], dtype=np.float64)
    seen = steps > 0
    x[:, _SESSION] = seen
    x[:, _SESSION + 1] = np.where(seen, 1.0 / np.maximum(steps, 1.0), 0.0)
    x[:, _SESSION + 2] = np.log1p([count.get(item, 0) for item in items])
    _category_and_price(x, history, items, meta)
    return x.astype(np.float32)


def _category_and_price(x: np.ndarray, history: Sequence[str], items: Sequence[str], meta: ItemMeta) -> None:
    if not meta.index:  # no catalogue facts in this version: the columns stay zero
        return
    cat, price = meta.lookup(items)
    hist_cat, hist_price = meta.lookup(history)
    known = cat >= 0
    x[:, _CATEGORY] = known
    if len(history):
        x[:, _CATEGORY + 1] = known & (cat == hist_cat[-1])
        x[:, _CATEGORY + 2] = known * (cat[:, None] == hist_cat[None, :]).mean(axis=1)
    has_price = ~np.isnan(price)
    x[:, _PRICE] = has_price
    x[:, _PRICE + 1] = np.where(has_price, np.log1p(np.nan_to_num(price)), 0.0)
    known_hist = hist_price[~np.isnan(hist_price)]
    if len(known_hist):
        ratio = np.log1p(np.nan_to_num(price)) - math.log1p(float(known_hist.mean()))
        x[:, _PRICE + 2] = np.where(has_price, ratio, 0.0)


class MlpReranker:
    """serving.recommender.Reranker over ranker.onnx; one ONNX Runtime session with one thread (the MLP is tiny,
    and a second thread costs more in hand-off than it saves)."""

    def __init__(self, model_path: Path, item_cache: ItemFeatureCache, meta: ItemMeta, version: str = "") -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.item_cache = item_cache
        self.meta = meta
        self.version = version

    def features(self, history: Sequence[str], candidates: Sequence[tuple[str, float]]) -> np.ndarray:
        items = [item for item, _ in candidates]
        scores = [score for _, score in candidates]
        return candidate_features(history, items, scores, self.item_cache.gather(items), self.meta)

    def score(self, features: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run(["scores"], {"features": features})[0]
        return out

    async def rerank(self, state: SessionState, candidates: list[tuple[str, float]]) -> list[tuple[str, float]]:
        if not candidates:
            return candidates
        scores = self.score(self.features(state.items, candidates))
        order = np.argsort(-scores, kind="stable")  # ties keep retrieval order
        values = scores.tolist()
        return [(candidates[i][0], values[i]) for i in order.tolist()]


def load_reranker(version_dir: Path, item_cache: ItemFeatureCache) -> MlpReranker | None:
    """The version's ranker, or None when it has none. Its files are checked against the manifest, and its
    feature names against FEATURES (ArtifactError on a ranker built for other features)."""
    manifest = load_manifest(version_dir)
    if RANKER_MODEL not in manifest.files or RANKER_INFO not in manifest.files:
        return None
    for name in (RANKER_MODEL, RANKER_INFO, ITEM_META):
        if name in manifest.files and sha256_file(version_dir / name) != manifest.files[name]:
            raise ChecksumMismatch(f"{version_dir / name} does not match its manifest checksum")
    info = json.loads((version_dir / RANKER_INFO).read_text())
    if tuple(info.get("features", ())) != FEATURES:
        raise ArtifactError(f"{version_dir / RANKER_INFO} was trained on other features than this scorer computes")
    try:
        return MlpReranker(version_dir / RANKER_MODEL, item_cache, ItemMeta.load(version_dir), manifest.version)
    except ORT_ERRORS as exc:
        raise ArtifactError(f"{version_dir / RANKER_MODEL} cannot be loaded: {exc}") from exc


class Rerankers:
    """One reranker per model version, loaded on first use: the server asks for the runtime it serves with, so a
    hot swap of the model brings its own ranker (or none) with it."""

    def __init__(self, item_cache: ItemFeatureCache) -> None:
        self.item_cache = item_cache
        self._loaded: dict[Path, MlpReranker | None] = {}

    def get(self, version_dir: Path) -> MlpReranker | None:
        """The version's reranker; None when it has none or it cannot be used (logged: retrieval order serves)."""
        if version_dir not in self._loaded:
            try:
                loaded = load_reranker(version_dir, self.item_cache)
            except (ArtifactError, OSError, ValueError) as exc:
                log.error("ranker of %s not used, serving retrieval order: %s", version_dir.name, exc)
                loaded = None
            # the one in service and the one before it: in-flight requests may still hold the old runtime
            self._loaded = {**dict(list(self._loaded.items())[-1:]), version_dir: loaded}
            self.item_cache.active = loaded is not None  # the newest version decides whether features are read
        return self._loaded[version_dir]
