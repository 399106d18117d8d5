"""The ranker's input features: one definition, used online by the scorer and offline by training.

`candidate_features` builds the ranker's rows from retrieval, stream, session, category and price facts;
`item_block` turns the stream's item feature rows (features/schema.py ITEM_FEATURES) into the stream part of
them. The scorer (serving/ranking.py, serving/item_cache.py) and training (training/ranker_features.py) both
call these, so the ranker sees the same numbers in both places, and training needs no part of the scorer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.artifact import ITEM_META
from streamrec.features.online import TS_KEY
from streamrec.features.schema import ITEM_FEATURES, ITEM_TTL_S, MAX_RECENT_ITEMS, TRENDING_HALF_LIFE_MS

RANKER_MODEL = "ranker.onnx"
RANKER_INFO = "ranker.json"
MAX_HISTORY = MAX_RECENT_ITEMS  # the stream keeps a session's last viewed items, this many

RAW_FEATURES = tuple(name for name, _ in ITEM_FEATURES.features)  # the row as the worker writes it
MAX_AGE_H = ITEM_TTL_S / 3600  # older item rows are gone from Redis, so "unknown" reads as this age
ITEM_BLOCK = (
    "log_views_1h",
    "log_clicks_1h",
    "log_carts_1h",
    "log_purchases_1h",
    "log_views_24h",
    "log_clicks_24h",
    "log_carts_24h",
    "log_purchases_24h",
    "log_trending_now",
    "conversion_rate",
    "log_item_age_h",
)
_DECAY_PER_MS = math.log(2) / TRENDING_HALF_LIFE_MS


def item_block(raw: np.ndarray, row_ts_ms: np.ndarray, known: np.ndarray, now_ms: int | np.ndarray) -> np.ndarray:
    """Rows of RAW_FEATURES (as stored, [N, 10]) with their event times -> the ranker's ITEM_BLOCK [N, 11] float32.

    Counts are log-scaled (they are heavy-tailed); the trending score is decayed from the row's time to `now_ms`
    (as the worker's trending ranking does), so a quiet item's score fades even though its row is not rewritten;
    the row's age says how stale its window counts are. Unknown items: zeros and the largest age. `now_ms` is
    one time (online: the stream's watermark) or one per row (offline: each prefix's time).
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_FEATURES))
    age_ms = np.maximum(now_ms - np.asarray(row_ts_ms, dtype=np.float64), 0.0)
    out = np.zeros((len(raw), len(ITEM_BLOCK)), dtype=np.float64)
    out[:, :8] = np.log1p(np.maximum(raw[:, :8], 0.0))
    out[:, 8] = np.log1p(np.maximum(raw[:, 8], 0.0) * np.exp(-age_ms * _DECAY_PER_MS))
    out[:, 9] = raw[:, 9]
    out[:, 10] = np.log1p(np.minimum(age_ms / 3_600_000.0, MAX_AGE_H))
    unknown = ~np.asarray(known, dtype=bool)
    out[unknown] = 0.0
    out[unknown, 10] = math.log1p(MAX_AGE_H)
    return out.astype(np.float32)


UNKNOWN_ROW = item_block(np.zeros((1, len(RAW_FEATURES))), np.zeros(1), np.zeros(1, dtype=bool), 0)[0]


def rows_to_raw(rows: Sequence[dict[str, Any] | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded feature rows (None = no row) -> (raw [N, 10], event time [N], known [N])."""
    raw = np.zeros((len(rows), len(RAW_FEATURES)), dtype=np.float64)
    ts = np.zeros(len(rows), dtype=np.int64)
    known = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        if row is None:
            continue
        raw[i] = [float(row.get(name) or 0.0) for name in RAW_FEATURES]  # a field never written decodes as None
        ts[i] = int(row.get(TS_KEY) or 0)
        known[i] = True
    return raw, ts, known


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
