"""The catalogue's Redis layout: written by the stream worker (stream/catalog.py), read by the scorer and search.

Keys (the hash tag `{project:catalog}` puts all three in one Redis Cluster slot, so one script applies a batch):

    {project:catalog}:products   hash    product_id -> streamrec.v1.Product bytes, the latest record applied
                                         (unavailable products stay; deleted ones are removed)
    {project:catalog}:updated    hash    product_id -> updated_ms of the record applied, a deletion's included
                                         (a tombstone: an older record arriving late cannot bring a product back)
    {project:catalog}:changes    stream  one entry per applied change: `id` (product_id) and `product` (its bytes,
                                         b"" for a deletion), trimmed to about CHANGES_MAXLEN entries

and the product's `product_features` row in Feast's online layout (features/schema.py), by the same script on one
Redis. On a Redis Cluster that row lives in another slot (Feast's keys carry no hash tag), so it is written in a
second pipeline after the script, for the changes it applied and for those it found already applied (a retry).

A record is applied only when it is newer than the one stored for its product (`updated_ms` greater; a deletion
also wins a tie with a product). Applying is idempotent: a redelivered record changes nothing. Readers take a
snapshot with `load_catalog` and follow `read_changes` from the id it returns; a change made while the snapshot
is read is seen twice, which is harmless since applying a change on the reader's side is idempotent too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from streamrec.errors import StreamrecError
from streamrec.features.online import FeatureLayout
from streamrec.features.schema import PRODUCT_FEATURES
from streamrec.protos.catalog_pb2 import Product
from streamrec.redis import Command, RedisClient, Script, execute_with_scripts

CHANGES_MAXLEN = 100_000  # approximate (XADD MAXLEN ~): a reader further behind than this reloads
SCAN_COUNT = 1000  # products per HSCAN step of load_catalog: no single reply blocks Redis on a big catalogue
APPLIED, ALREADY, IGNORED = 1, 2, 0  # the script's verdict per change

# KEYS: products, updated, changes, then (rows = 1 only) the Feast row key of each change, in order.
# ARGV: maxlen, n, rows, then per change: product_id, updated_ms, product bytes (empty: a deletion), k, then k
#       HSET arguments of its Feast row (k = 0 without rows).
# Returns one verdict per change: 1 applied, 2 the same record is stored already (a redelivery), 0 older.
APPLY_PRODUCTS = """
local products, updated, changes = KEYS[1], KEYS[2], KEYS[3]
local maxlen, n, rows = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local verdicts = {}
local pos = 4
for i = 1, n do
  local id, ts, product, k = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], tonumber(ARGV[pos + 3])
  local deleting = product == ''
  local stored = tonumber(redis.call('HGET', updated, id))
  local new = tonumber(ts)
  local verdict = 1
  if stored then
    if new < stored then
      verdict = 0
    elseif new == stored then
      local current = redis.call('HGET', products, id)
      if deleting then
        if current then verdict = 1 else verdict = 2 end
      elseif current == product then
        verdict = 2
      else
        verdict = 0  -- a different record with the same time: the first one applied stands
      end
    end
  end
  if verdict == 1 then
    redis.call('HSET', updated, id, ts)
    if deleting then redis.call('HDEL', products, id) else redis.call('HSET', products, id, product) end
    redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*', 'id', id, 'product', product)
    if rows then
      if deleting then
        redis.call('DEL', KEYS[3 + i])
      else
        redis.call('HSET', KEYS[3 + i], unpack(ARGV, pos + 4, pos + 3 + k))
      end
    end
  end
  verdicts[i] = verdict
  pos = pos + 4 + k
end
return verdicts
"""
_SCRIPT = Script(APPLY_PRODUCTS)


class CatalogGap(StreamrecError):
    """The change stream no longer holds every entry after the reader's id (it was trimmed): reload the catalogue."""


@dataclass(frozen=True)
class CatalogKeys:
    products: str
    updated: str
    changes: str


def catalog_keys(project: str) -> CatalogKeys:
    prefix = f"{{{project}:catalog}}"
    return CatalogKeys(f"{prefix}:products", f"{prefix}:updated", f"{prefix}:changes")


def product_row(product: Product) -> dict[str, Any]:
    """The product_features row of a product (names and kinds in features/schema.py PRODUCT_FEATURES)."""
    return {
        "title": product.title,
        "brand": product.brand,
        "category": product.category,
        "price": product.price if product.HasField("price") else None,
        "available": product.available,
        "updated_ms": product.updated_ms,
    }


async def apply_products(client: RedisClient, project: str, changes: Sequence[tuple[str, bytes | None, int]]) -> int:
    """Apply (product_id, Product bytes or None for a deletion, updated_ms) in order; how many were newer than
    what was stored, and so applied. One round trip on one Redis; two on a Redis Cluster (the Feast rows)."""
    if not changes:
        return 0
    keys = catalog_keys(project)
    layout = FeatureLayout(project, {PRODUCT_FEATURES.name: PRODUCT_FEATURES})
    rows_here = not client.is_cluster
    script_keys = [keys.products, keys.updated, keys.changes]
    args: list[bytes | str | int | float] = [CHANGES_MAXLEN, len(changes), 1 if rows_here else 0]
    rows: list[tuple[bytes, list[bytes] | None]] = []  # each change's Feast key and HSET pairs (None: delete)
    for product_id, raw, updated_ms in changes:
        if raw is None:
            row_key, hset = layout.redis_key(PRODUCT_FEATURES.name, product_id), None
        else:
            product = Product.FromString(raw)
            row_key, hset = layout.row_fields(PRODUCT_FEATURES.name, product_id, product_row(product), updated_ms)
        rows.append((row_key, hset))
        sent = hset if rows_here and hset is not None else []
        args += [product_id, updated_ms, raw or b"", len(sent), *sent]
    row_keys = [row_key for row_key, _ in rows] if rows_here else []
    command: Command = ("EVALSHA", _SCRIPT.sha, len(script_keys) + len(row_keys), *script_keys, *row_keys, *args)
    [verdicts] = await execute_with_scripts(client, [command], [_SCRIPT])
    verdicts = [int(v) for v in cast(list[Any], verdicts)]
    if not rows_here:
        follow: list[Command] = [
            ("DEL", key) if hset is None else ("HSET", key, *hset)
            for (key, hset), verdict in zip(rows, verdicts, strict=True)
            if verdict in (APPLIED, ALREADY)
        ]
        if follow:
            await client.execute(follow)
    return sum(1 for v in verdicts if v == APPLIED)


def load_catalog(client: redis.Redis, project: str) -> tuple[dict[str, Product], str]:
    """Every stored product, and the id of the last entry of the change stream ("0-0" when it is empty) as of
    before the products were read: following `read_changes` from that id misses no change."""
    keys = catalog_keys(project)
    last = cast(list[Any], client.xrevrange(keys.changes, count=1))
    last_id = _text(last[0][0]) if last else "0-0"
    products: dict[str, Product] = {}
    for product_id, raw in client.hscan_iter(keys.products, count=SCAN_COUNT):
        products[_text(product_id)] = Product.FromString(raw)
    return products, last_id


def read_changes(
    client: redis.Redis, project: str, after_id: str, block_ms: int, count: int = 1000
) -> list[tuple[str, str, Product | None]]:
    """The changes after `after_id`, oldest first: (entry id, product_id, the Product or None when deleted).

    Waits up to `block_ms` for a first one (0: returns at once, unlike Redis' BLOCK 0, which waits forever); the
    client's socket timeout must be longer than that. Raises CatalogGap when entries after `after_id` were
    trimmed away before they were read: the caller reloads with `load_catalog`.
    """
    keys = catalog_keys(project)
    if after_id not in ("0-0", "0"):  # an id the stream no longer holds: entries after it may be gone too
        first = cast(list[Any], client.xrange(keys.changes, count=1))
        if first and _stream_id(_text(first[0][0])) > _stream_id(after_id):
            raise CatalogGap(f"{keys.changes} was trimmed past {after_id}: reload the catalogue")
    reply = client.xread({keys.changes: after_id}, count=count, block=block_ms if block_ms > 0 else None)
    out: list[tuple[str, str, Product | None]] = []
    for _stream, entries in cast(list[Any], reply or []):
        for entry_id, fields in entries:
            raw = fields.get(b"product", b"")
            out.append((_text(entry_id), _text(fields[b"id"]), Product.FromString(raw) if raw else None))
    return out


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
