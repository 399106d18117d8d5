"""Fixtures of the feature tests: one real redis-server per module, a fresh project per test, rows of every kind."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from streamrec.devstack.localstack import LocalStack

# Rows of every view with the awkward cases: unicode ids, empty arrays, zero counts, negative and large numbers.
SESSION_ROWS: dict[str, dict[str, Any]] = {
    "s-1": {
        "recent_items": ["i1", "i2", "ü3"],
        "last_category": "shoes",
        "cart_items": ["i2"],
        "purchased_items": [],
        "event_count": 3,
        "click_count": 1,
        "cart_count": 1,
        "purchase_count": 0,
    },
    "séssion-ß-東京": {
        "recent_items": [],
        "last_category": "",
        "cart_items": [],
        "purchased_items": [],
        "event_count": 0,
        "click_count": 0,
        "cart_count": 0,
        "purchase_count": 0,
    },
}
ITEM_ROWS: dict[str, dict[str, Any]] = {
    "item-1": {
        "views_1h": 5,
        "clicks_1h": 2,
        "carts_1h": 1,
        "purchases_1h": 0,
        "views_24h": 120,
        "clicks_24h": 30,
        "carts_24h": 9,
        "purchases_24h": 2**40,
        "trending_score": 12.625,
        "conversion_rate": 0.013333333333333334,
    },
    "物品-2": {
        "views_1h": 0,
        "clicks_1h": 0,
        "carts_1h": 0,
        "purchases_1h": 0,
        "views_24h": 0,
        "clicks_24h": 0,
        "carts_24h": 0,
        "purchases_24h": 0,
        "trending_score": 0.0,
        "conversion_rate": 0.0,
    },
}
USER_ROWS: dict[str, dict[str, Any]] = {
    "u-1": {
        "top_categories": ["shoes", "hats", "ünïcode"],
        "top_category_counts": [7, 3, 1],
        "purchase_history": ["i9", "i2"],
    },
    "u-empty": {"top_categories": [], "top_category_counts": [], "purchase_history": []},
}
PRODUCT_ROWS: dict[str, dict[str, Any]] = {
    "p-1": {
        "title": "Cordless drill, 18 V — ünïcode",
        "brand": "Acme",
        "category": "tools > drills",
        "price": 129.99,
        "available": True,
        "updated_ms": 1_704_164_645_678,
    },
    "製品-2": {"title": "x", "brand": "", "category": "", "price": None, "available": False, "updated_ms": 0},
}
ROWS = {
    "session_features": SESSION_ROWS,
    "item_features": ITEM_ROWS,
    "user_features": USER_ROWS,
    "product_features": PRODUCT_ROWS,
}


Rows = dict[str, dict[str, dict[str, Any]]]  # view -> entity id -> feature -> value


@pytest.fixture
def rows() -> Rows:
    """Rows of every view to write, by view and entity id."""
    return copy.deepcopy(ROWS)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalStack(state_dir=tmp_path_factory.mktemp("redis")) as stack:
        yield stack.start_redis()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as conn:
        yield conn


@pytest.fixture
def project() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def feast_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feast")
