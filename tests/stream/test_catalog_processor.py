"""CatalogProcessor on a real redis-server: valid records applied, invalid ones dead-lettered with their reason and
original bytes, each counted once, also when the batch is processed again."""

from __future__ import annotations

from streamrec.features.catalog_store import load_catalog
from streamrec.protos.catalog_pb2 import Product
from streamrec.redis import FastRedis, sync_client
from streamrec.stream.catalog import CatalogLimits, CatalogProcessor
from streamrec.stream.processor import RawRecord

NOW = 1_800_000_000_000


class Letters:
    """The dead-letter sink's one method, recording what it would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None, str]] = []

    async def send(self, record: RawRecord, reason: str, detail: str) -> None:
        self.sent.append((record.key, record.value, reason))


def record(product_id: str, updated_ms: int, offset: int, key: str | None = None) -> RawRecord:
    value = Product(product_id=product_id, title=f"t{updated_ms}", updated_ms=updated_ms).SerializeToString()
    return RawRecord((key or product_id).encode(), value, 0, offset, (NOW - 1000) / 1000)


async def test_a_batch_is_applied_and_its_bad_records_dead_lettered(redis_url: str, project: str) -> None:
    letters = Letters()
    client = FastRedis(redis_url)
    processor = CatalogProcessor(client, project, letters, CatalogLimits(16_384, 60_000), clock_ms=lambda: NOW)
    batch = [
        record("a", NOW - 10, 0),
        record("a", NOW - 20, 1),  # older: ignored
        RawRecord(b"b", b"\xff garbage", 0, 2),
        record("c", NOW - 10, 3, key="other"),
        RawRecord(b"d", None, 0, 4, (NOW - 5) / 1000),  # a tombstone of a product never seen
    ]
    try:
        outcome = await processor.process(batch)
        again = await processor.process(batch)  # a redelivery changes nothing
    finally:
        await client.aclose()
    assert (outcome.applied, outcome.ignored, dict(outcome.dead_letters)) == (
        2,
        1,
        {"undecodable": 1, "key_mismatch": 1},
    )
    assert (again.applied, again.ignored) == (0, 3)
    assert letters.sent[:2] == [(b"b", b"\xff garbage", "undecodable"), (b"other", batch[3].value, "key_mismatch")]
    products, _ = load_catalog(sync_client(redis_url), project)
    assert {pid: p.title for pid, p in products.items()} == {"a": f"t{NOW - 10}"}
