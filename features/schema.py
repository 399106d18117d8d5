"""The online feature schema in plain Python: views, their entities, features, value kinds and TTLs.

The one source of truth for both sides of the online store: `features/repo/definitions.py` turns it into Feast
objects for `feast apply`, and `features/online.py` turns it into Redis keys and hash fields without importing
Feast (which takes seconds). The stream worker and the scorer depend on these names and kinds; changing one is a
contract change.

Kinds map to Feast types and to the `Value` proto field that holds them:

    kind          Feast type      Value proto field
    string        String          string_val (2)
    int64         Int64           int64_val (4)
    double        Float64         double_val (5)
    bool          Bool            bool_val (7)
    string_list   Array(String)   string_list_val (12)
    int64_list    Array(Int64)    int64_list_val (14)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "int64", "double", "bool", "string_list", "int64_list"]

DAY_S = 24 * 3600
SESSION_TTL_S = DAY_S  # no real session lasts a day; also the TTL of the session state and its list
ITEM_TTL_S = 2 * DAY_S  # the widest window is 24 h; one more day keeps quiet items' last counts readable
USER_TTL_S = 30 * DAY_S  # a month of a returning user's tastes and purchases
NO_TTL = 0  # a view whose rows never expire (Feast: a ttl of 0 lives forever; the writer sets no EXPIRE)

TRENDING_HALF_LIFE_MS = 3_600_000  # the trending score halves in an hour without events (stream and ranker)
MAX_RECENT_ITEMS = 50  # session recent_items and user purchase_history are capped at this length


@dataclass(frozen=True)
class ViewSpec:
    """One feature view: its entity (Feast entity name and join key), TTL (NO_TTL: none) and ordered features."""

    name: str
    entity: str
    join_key: str
    ttl_s: int
    features: tuple[tuple[str, Kind], ...]
    description: str = ""

    @property
    def push_source(self) -> str:
        return f"{self.name}_push"

    def kinds(self) -> dict[str, Kind]:
        return dict(self.features)


SESSION_FEATURES = ViewSpec(
    name="session_features",
    entity="session",
    join_key="session_id",
    ttl_s=SESSION_TTL_S,
    features=(
        ("recent_items", "string_list"),  # oldest first, at most MAX_RECENT_ITEMS
        ("last_category", "string"),
        ("cart_items", "string_list"),
        ("purchased_items", "string_list"),
        ("event_count", "int64"),
        ("click_count", "int64"),
        ("cart_count", "int64"),
        ("purchase_count", "int64"),
    ),
    description="what one session has done so far, kept by the stream worker",
)

ITEM_FEATURES = ViewSpec(
    name="item_features",
    entity="item",
    join_key="item_id",
    ttl_s=ITEM_TTL_S,
    features=(
        ("views_1h", "int64"),
        ("clicks_1h", "int64"),
        ("carts_1h", "int64"),
        ("purchases_1h", "int64"),
        ("views_24h", "int64"),
        ("clicks_24h", "int64"),
        ("carts_24h", "int64"),
        ("purchases_24h", "int64"),
        ("trending_score", "double"),  # exponentially decayed activity
        ("conversion_rate", "double"),  # purchases_24h / max(1, views_24h + clicks_24h)
    ),
    description="windowed popularity of one item across all sessions",
)

USER_FEATURES = ViewSpec(
    name="user_features",
    entity="user",
    join_key="user_id",
    ttl_s=USER_TTL_S,
    features=(
        ("top_categories", "string_list"),  # most frequent first
        ("top_category_counts", "int64_list"),  # aligned with top_categories
        ("purchase_history", "string_list"),  # most recent last, at most MAX_RECENT_ITEMS
    ),
    description="long-lived tastes of a signed-in user",
)

# Its own entity (join key product_id, the same ids as item_id): a row in its own Redis hash. Sharing the item
# entity's hash would share its expiry, and the worker sets ITEM_TTL_S on that hash with every event, so a
# product would vanish two days after its last event, even though the catalogue still holds it.
PRODUCT_FEATURES = ViewSpec(
    name="product_features",
    entity="product",
    join_key="product_id",
    ttl_s=NO_TTL,  # the catalogue's latest record stays until the product is deleted
    features=(
        ("title", "string"),
        ("brand", "string"),
        ("category", "string"),
        ("price", "double"),  # null when the record has none
        ("available", "bool"),
        ("updated_ms", "int64"),
    ),
    description="the catalogue's latest record of one product, kept by the stream worker (features/catalog_store.py)",
)

VIEWS: dict[str, ViewSpec] = {v.name: v for v in (SESSION_FEATURES, ITEM_FEATURES, USER_FEATURES, PRODUCT_FEATURES)}
