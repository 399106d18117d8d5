"""Catalogue records (topic streamrec.catalog) decoded, validated and applied a batch at a time; Faust-free.

A record is a streamrec.v1.Product keyed by its product_id, or a tombstone (no value) that deletes the product
named by its key. A bad record goes to the dead-letter topic (streamrec.catalog.dlq) with its original bytes and
a `reason` header, is counted, and the batch goes on. Reasons, as stream/decode.py names them for events:

    undecodable        not a Product (bad bytes, not UTF-8), or a key that is not UTF-8
    oversize           more than `max_record_bytes`
    missing_field      no product_id, no title (after trimming), or a tombstone without a key
    bad_value          a field out of the ranges of protos/catalog.proto, or a negative updated_ms
    key_mismatch       the record key is not the product_id
    future_timestamp   updated_ms more than `max_future_skew_ms` ahead: it would block every later update

A Product is stored as validated: title, brand and category trimmed, and an unset updated_ms (0) replaced by the
record's timestamp. A tombstone's time is its record's timestamp. Which of two records of a product wins is
decided by updated_ms in Redis (features/catalog_store.py): the newer, whatever order they arrive in.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from streamrec.errors import InvalidEvent
from streamrec.features.catalog_store import apply_products
from streamrec.protos.catalog_pb2 import Product
from streamrec.redis import RedisClient
from streamrec.stream.decode import MAX_PRICE
from streamrec.stream.processor import DeadLetterSink, RawRecord

MAX_PRODUCT_ID_CHARS = 256
MAX_TITLE_CHARS = 1000
MAX_LABEL_CHARS = 256  # brand and category
REASONS = ("undecodable", "oversize", "missing_field", "bad_value", "key_mismatch", "future_timestamp")


@dataclass(frozen=True)
class CatalogLimits:
    max_record_bytes: int
    max_future_skew_ms: int


@dataclass(frozen=True)
class ProductChange:
    """One validated record: the product's new bytes (None: deleted) and the time that orders its changes."""

    product_id: str
    product: bytes | None
    updated_ms: int


@dataclass
class CatalogOutcome:
    applied: int = 0  # newer than what was stored
    ignored: int = 0  # valid, but not newer (an older record, or a redelivery)
    dead_letters: Counter[str] = field(default_factory=Counter)


def decode_product(
    key: bytes | None, value: bytes | None, timestamp_ms: int, now_ms: int, limits: CatalogLimits
) -> ProductChange:
    """A record's change, or InvalidEvent with the dead-letter reason (the policy above)."""
    product_id = _key_text(key)
    if value is None:  # a tombstone: the key alone names the product
        if not product_id:
            raise InvalidEvent("missing_field", "a tombstone without a key deletes nothing")
        _check_length("product_id (the key)", product_id, MAX_PRODUCT_ID_CHARS)
        return ProductChange(product_id, None, timestamp_ms)
    if len(value) > limits.max_record_bytes:
        raise InvalidEvent("oversize", f"{len(value)} bytes > limit {limits.max_record_bytes}")
    product = Product()
    try:
        product.ParseFromString(value)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise InvalidEvent("undecodable", f"not a streamrec.v1.Product: {exc}") from exc
    if not product.product_id:
        raise InvalidEvent("missing_field", "product_id is empty")
    _check_length("product_id", product.product_id, MAX_PRODUCT_ID_CHARS)
    if product_id != product.product_id:
        raise InvalidEvent("key_mismatch", f"record key {product_id!r} is not product_id {product.product_id!r}")
    product.title = product.title.strip()
    product.brand = product.brand.strip()
    product.category = product.category.strip()
    if not product.title:
        raise InvalidEvent("missing_field", "title is empty")
    _check_length("title", product.title, MAX_TITLE_CHARS)
    _check_length("brand", product.brand, MAX_LABEL_CHARS)
    _check_length("category", product.category, MAX_LABEL_CHARS)
    if product.HasField("price") and not (math.isfinite(product.price) and 0 <= product.price <= MAX_PRICE):
        raise InvalidEvent("bad_value", f"price {product.price} is not a finite number in 0..{MAX_PRICE:g}")
    if product.updated_ms < 0:
        raise InvalidEvent("bad_value", f"updated_ms {product.updated_ms} is negative")
    if product.updated_ms == 0:
        product.updated_ms = timestamp_ms
    if product.updated_ms > now_ms + limits.max_future_skew_ms:
        ahead = product.updated_ms - now_ms
        raise InvalidEvent("future_timestamp", f"updated_ms {product.updated_ms} is {ahead} ms ahead")
    return ProductChange(product.product_id, product.SerializeToString(), product.updated_ms)


def _key_text(key: bytes | None) -> str:
    try:
        return key.decode() if key else ""
    except UnicodeDecodeError as exc:
        raise InvalidEvent("undecodable", f"the record key is not UTF-8: {exc}") from exc


def _check_length(name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise InvalidEvent("bad_value", f"{name} is {len(text)} chars > {limit}")


class CatalogProcessor:
    """Applies a batch of catalogue records: valid ones in one apply_products call, then the dead letters.

    The letters go last so that a batch retried after a Redis error sends each of them once; applying again is
    harmless (the records already applied are ignored). Every side effect is done when `process` returns.
    """

    def __init__(
        self,
        client: RedisClient,
        project: str,
        dead_letters: DeadLetterSink,
        limits: CatalogLimits,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.project = project
        self.dead_letters = dead_letters
        self.limits = limits
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    async def process(self, records: Sequence[RawRecord]) -> CatalogOutcome:
        outcome = CatalogOutcome()
        now = self.clock_ms()
        changes: list[tuple[str, bytes | None, int]] = []
        bad: list[tuple[RawRecord, InvalidEvent]] = []
        for record in records:
            timestamp_ms = int(record.timestamp_s * 1000) if record.timestamp_s is not None else now
            try:
                change = decode_product(record.key, record.value, timestamp_ms, now, self.limits)
            except InvalidEvent as exc:
                bad.append((record, exc))
                continue
            changes.append((change.product_id, change.product, change.updated_ms))
        if changes:
            outcome.applied = await apply_products(self.client, self.project, changes)
            outcome.ignored = len(changes) - outcome.applied
        for record, invalid in bad:
            outcome.dead_letters[invalid.reason] += 1
            await self.dead_letters.send(record, invalid.reason, invalid.detail)
        return outcome
