"""Seeded synthetic clickstream: sessions with learnable item-to-item structure, as canonical events.

The generator is what tests, the demo and load tests run on when the real samples in ../shared/data are absent.
Its structure is simple and known, so tests can ask for behaviour a trained model must show:

* items belong to categories and have a Zipf popularity and a price;
* every item has one *successor* (`catalogue.successor[i]`); a session's next click is that successor with
  probability `p_follow`, otherwise a popular item of the same category, otherwise any popular item;
* a clicked item is added to the cart with `p_cart`, and a cart is bought at the end with `p_purchase`.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from streamrec.events import CanonicalEvent


@dataclass(frozen=True)
class SyntheticConfig:
    n_items: int = 500
    n_categories: int = 20
    n_sessions: int = 4000
    mean_session_length: float = 6.0
    p_follow: float = 0.7
    p_same_category: float = 0.2
    p_cart: float = 0.08
    p_purchase: float = 0.4
    user_fraction: float = 0.3  # sessions with a known user id
    # sessions start within the day before the previous midnight (UTC): recent enough for the worker's age limit
    # on any date, and the same all day long, so a day's runs see the same events
    start_ms: int = field(default_factory=lambda: (int(time.time()) // 86_400 - 2) * 86_400_000)
    span_ms: int = 86_400_000  # sessions start within one day
    seed: int = 7  # the catalogue (items, categories, successors): the "world"
    session_seed: int | None = None  # the sessions drawn in that world; default seed + 1


@dataclass(frozen=True)
class Catalogue:
    item_ids: list[str]
    category: np.ndarray  # item index -> category index
    price: np.ndarray
    popularity: np.ndarray  # probabilities summing to 1
    successor: np.ndarray  # item index -> item index

    def item(self, index: int) -> str:
        return self.item_ids[index]

    def successor_of(self, item_id: str) -> str:
        return self.item_ids[int(self.successor[self.item_ids.index(item_id)])]


def make_catalogue(config: SyntheticConfig) -> Catalogue:
    rng = np.random.default_rng(config.seed)
    n = config.n_items
    category = rng.integers(0, config.n_categories, size=n)
    price = np.round(rng.lognormal(mean=3.0, sigma=0.8, size=n), 2)
    weights = 1.0 / np.arange(1, n + 1) ** 1.05
    popularity = weights[rng.permutation(n)]
    popularity /= popularity.sum()
    # successors form one random cycle, so every item leads somewhere and nothing is its own successor
    order = rng.permutation(n)
    successor = np.empty(n, dtype=np.int64)
    successor[order] = np.roll(order, -1)
    item_ids = [f"i{idx:05d}" for idx in range(n)]
    return Catalogue(item_ids, category, price, popularity, successor)


def _next_item(rng: np.random.Generator, cat: Catalogue, config: SyntheticConfig, current: int) -> int:
    draw = rng.random()
    if draw < config.p_follow:
        return int(cat.successor[current])
    if draw < config.p_follow + config.p_same_category:
        same = np.flatnonzero(cat.category == cat.category[current])
        weights = cat.popularity[same] / cat.popularity[same].sum()
        return int(rng.choice(same, p=weights))
    return int(rng.choice(len(cat.item_ids), p=cat.popularity))


def generate(config: SyntheticConfig = SyntheticConfig()) -> Iterator[CanonicalEvent]:
    """Yield canonical events session by session; within a session in event-time order."""
    cat = make_catalogue(config)
    session_seed = config.seed + 1 if config.session_seed is None else config.session_seed
    rng = np.random.default_rng(session_seed)
    for s in range(config.n_sessions):
        session_id = f"s{session_seed}-{s:07d}"
        user_id = f"u{rng.integers(0, config.n_sessions // 3 + 1):06d}" if rng.random() < config.user_fraction else ""
        ts = config.start_ms + int(rng.integers(0, config.span_ms))
        length = max(2, int(rng.poisson(config.mean_session_length - 2)) + 2)
        current = int(rng.choice(len(cat.item_ids), p=cat.popularity))
        cart: list[int] = []
        seq = 0
        for step in range(length):
            if step:
                current = _next_item(rng, cat, config, current)
                ts += int(rng.integers(2_000, 60_000))
            yield _event(cat, session_id, user_id, seq, "click", current, ts)
            seq += 1
            if rng.random() < config.p_cart:
                ts += int(rng.integers(1_000, 10_000))
                cart.append(current)
                yield _event(cat, session_id, user_id, seq, "add_to_cart", current, ts)
                seq += 1
        if cart and rng.random() < config.p_purchase:
            for item in dict.fromkeys(cart):
                ts += int(rng.integers(1_000, 5_000))
                yield _event(cat, session_id, user_id, seq, "purchase", item, ts)
                seq += 1


def _event(cat: Catalogue, session_id: str, user_id: str, seq: int, kind: str, item: int, ts: int) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=f"{session_id}-{seq}",
        type=kind,
        session_id=session_id,
        user_id=user_id,
        item_id=cat.item_ids[item],
        category_id=f"c{int(cat.category[item]):03d}",
        price=float(cat.price[item]),
        quantity=1,
        ts_ms=ts,
    )


def generate_time_ordered(config: SyntheticConfig = SyntheticConfig()) -> list[CanonicalEvent]:
    """All events sorted by event time, as a replay would publish them (sessions interleave)."""
    return sorted(generate(config), key=lambda e: (e.ts_ms, e.event_id))


# A shop's event export as training/loaders.py reads it with no mapping (the REES46 layout)
SHOP_EXPORT_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
SHOP_EVENT_TYPES = {"view": "view", "click": "view", "add_to_cart": "cart", "purchase": "purchase"}


def write_shop_export(path: Path, config: SyntheticConfig) -> int:
    """The events of `config`, in event-time order, as a shop's CSV export; returns the rows written. With a
    short `span_ms` it stands in for an export of a few hours, which is what a new shop often has."""
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SHOP_EXPORT_COLUMNS)
        for e in generate_time_ordered(config):
            when = datetime.fromtimestamp(e.ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            brand = f"brand{int(e.category_id[1:]) % 7}" if e.category_id else ""
            price = "" if e.price is None else f"{e.price:.2f}"
            writer.writerow(
                [when, SHOP_EVENT_TYPES[e.type], e.item_id, e.category_id, "", brand, price, e.user_id, e.session_id]
            )
            rows += 1
    return rows
