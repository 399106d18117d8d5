"""Search through the scorer's real gRPC socket over a catalogue in a real Redis: answers with titles and prices,
changes searchable as they are applied, the session's nudge, bad requests, auth, reflection, and degradation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from streamrec.features.catalog_store import apply_products
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import catalog_pb2, recommender_pb2_grpc
from streamrec.protos import recommender_pb2 as pb
from streamrec.redis import connect
from streamrec.search.engine import REASON_BRAND, REASON_SESSION
from streamrec.serving.server import Scorer, create_server
from streamrec.training.synthetic_catalogue import SyntheticProduct, synthetic_labels, synthetic_products
from tests.integration.conftest import settings
from tests.search.exported import exported_encoder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_encoder(tmp_path_factory)


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path) -> Path:
    from streamrec.training.search_eval import train_served_ranker

    folder = tmp_path_factory.mktemp("search")
    labels = folder / "labels.csv"
    synthetic_labels(synthetic_products(), 120, seed=3).to_csv(labels, index=False, encoding="latin-1")
    return train_served_ranker(labels, folder / "ranker", encoder_dir=encoder_dir, log=lambda _: None)


def product(p: SyntheticProduct, available: bool = True, updated_ms: int | None = None) -> catalog_pb2.Product:
    return p.to_product(updated_ms or int(time.time() * 1000), available)


async def publish(redis_url: str, project: str, products: list[catalog_pb2.Product]) -> None:
    client = connect(redis_url)
    await apply_products(client, project, [(p.product_id, p.SerializeToString(), p.updated_ms) for p in products])
    await client.aclose()


async def delete(redis_url: str, project: str, product_id: str) -> None:
    client = connect(redis_url)
    await apply_products(client, project, [(product_id, None, int(time.time() * 1000) + 1)])
    await client.aclose()


@pytest.fixture
async def start(redis_url: str, project: str, registry_copy: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Scorer, grpc.aio.Channel]] = []

    async def run(**overrides: Any) -> tuple[Scorer, recommender_pb2_grpc.RecommenderStub]:
        scorer = await create_server(settings(redis_url, project, registry_copy, **overrides))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}")
        started.append((scorer, channel))
        assert scorer.service.search is not None and scorer.service.search.feed is not None
        await asyncio.to_thread(scorer.service.search.feed.loaded.wait, 30)
        return scorer, recommender_pb2_grpc.RecommenderStub(channel)

    yield run
    for scorer, channel in started:
        await channel.close()
        await scorer.stop(0)


async def search_until(stub: Any, query: str, found: Callable[[pb.SearchResponse], bool], **fields: Any) -> Any:
    """Search until `found` holds (the feed applies changes in its own thread); the last answer either way."""
    for _ in range(200):
        response = await stub.Search(pb.SearchRequest(query=query, k=10, **fields))
        if found(response):
            return response
        await asyncio.sleep(0.02)
    return response


async def test_search_answers_titles_and_prices_and_follows_the_catalogue(
    redis_url: str, project: str, start: Callable[..., Any], encoder_dir: Path, search_dir: Path
) -> None:
    products = synthetic_products()
    await publish(redis_url, project, [product(p) for p in products])
    _, stub = await start(encoder_dir=encoder_dir, search_dir=search_dir)
    target = products[7]
    query = f"{target.brand} {target.kind} {target.finish}"
    response = await stub.Search(pb.SearchRequest(query=query, k=5))
    assert response.source == "ranker" and not response.fallback
    assert response.catalogue_products == len(products) and len(response.items) == 5
    first = response.items[0]
    assert target.kind in first.title.lower() and first.price > 0 and first.reason
    assert [h.item_id for h in response.items] == [h.item_id for h in sorted(response.items, key=lambda h: -h.score)]

    # a new product is searchable once applied; made unavailable, it leaves; deleted, it is gone
    new = SyntheticProduct("n00001", "Zyxcorp Quantum Widget Polisher", "Zyxcorp", "c999", "widget", "", "", 9.5)
    await publish(redis_url, project, [product(new)])
    answer = await search_until(stub, "quantum widget polisher", lambda r: any(h.item_id == "n00001" for h in r.items))
    assert answer.items[0].item_id == "n00001" and answer.items[0].title == new.title
    await publish(redis_url, project, [product(new, available=False, updated_ms=int(time.time() * 1000) + 5)])
    gone = await search_until(stub, "quantum widget polisher", lambda r: all(h.item_id != "n00001" for h in r.items))
    assert all(h.item_id != "n00001" for h in gone.items)
    kept = products[3]
    await delete(redis_url, project, kept.product_id)
    title_query = kept.title
    deleted = await search_until(stub, title_query, lambda r: all(h.item_id != kept.product_id for h in r.items))
    assert all(h.item_id != kept.product_id for h in deleted.items)

    filtered = await stub.Search(
        pb.SearchRequest(
            query=target.kind, k=10, filters=pb.SearchFilters(brands=[target.brand.upper()], max_price=1e6)
        )
    )
    assert filtered.items and {h.brand for h in filtered.items} == {target.brand}


async def test_a_session_that_browsed_a_brand_sees_it_higher_and_purchases_are_left_out(
    redis_url: str, project: str, start: Callable[..., Any], encoder_dir: Path, search_dir: Path
) -> None:
    products = synthetic_products()
    await publish(redis_url, project, [product(p) for p in products])
    _, stub = await start(encoder_dir=encoder_dir, search_dir=search_dir)
    kind = products[0].kind
    plain = await stub.Search(pb.SearchRequest(query=kind, k=10))
    brands = [h.brand for h in plain.items]
    favourite = next(b for b in reversed(brands) if b != brands[0])  # a brand the plain answer does not lead with
    browsed = [p.product_id for p in products if p.brand == favourite][:5]
    bought = plain.items[0].item_id
    state = SessionState(items=browsed, purchases=[bought], last_event_id="e1", updated_ms=int(time.time() * 1000))
    client = redis.Redis.from_url(redis_url)
    client.set(session_key(project, "s-search"), state.to_json())
    client.close()
    nudged = await stub.Search(pb.SearchRequest(query=kind, k=10, session_id="s-search"))
    before = next(n for n, h in enumerate(plain.items) if h.brand == favourite)
    after = next(n for n, h in enumerate(nudged.items) if h.brand == favourite)
    # it gains for its brand, and for the session model's liking of what the session viewed
    assert after < before and nudged.items[after].reason in {REASON_BRAND, REASON_SESSION}
    assert bought not in [h.item_id for h in nudged.items]


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"query": "", "k": 5}, "query must not be empty"),
        ({"query": "   ", "k": 5}, "query must not be empty"),
        ({"query": "x" * 257, "k": 5}, "at most 256"),
        ({"query": "drill", "k": 0}, "k must be between 1 and 100"),
        ({"query": "drill", "k": 101}, "k must be between 1 and 100"),
        ({"query": "drill", "k": 5, "filters": pb.SearchFilters(min_price=-1)}, "filters.min_price"),
        ({"query": "drill", "k": 5, "filters": pb.SearchFilters(min_price=5, max_price=1)}, "above filters.max_price"),
    ],
)
async def test_bad_search_requests_are_invalid_argument(
    start: Callable[..., Any], request_fields: dict[str, Any], message: str
) -> None:
    _, stub = await start()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Search(pb.SearchRequest(**request_fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in (caught.value.details() or "")


async def test_without_an_encoder_search_degrades_to_lexical_and_says_so(
    redis_url: str, project: str, start: Callable[..., Any], tmp_path: Path
) -> None:
    products = synthetic_products()
    await publish(redis_url, project, [product(p) for p in products[:50]])
    _, stub = await start(encoder_dir=tmp_path / "no-encoder")
    response = await stub.Search(pb.SearchRequest(query=products[0].title, k=3))
    assert response.fallback and response.source == "lexical" and response.items[0].item_id == products[0].product_id


async def test_search_needs_the_search_scope_and_reflection_lists_it(start: Callable[..., Any]) -> None:
    tokens = json.dumps({"storefront": ["recommend", "search"], "worker": ["score"]})
    scorer, stub = await start(auth_tokens=tokens)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Search(pb.SearchRequest(query="drill", k=3), metadata=(("authorization", "Bearer worker"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    answer = await stub.Search(pb.SearchRequest(query="drill", k=3), metadata=(("authorization", "Bearer storefront"),))
    assert answer.catalogue_products == 0 and not answer.items
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}")
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="streamrec.v1.Recommender")
    async for reply in reflection.ServerReflectionInfo(iter([request])):
        described = reply.file_descriptor_response.file_descriptor_proto
        assert any(b"Search" in raw for raw in described)
        break
    await channel.close()


async def test_recommendations_after_a_search_carry_its_results(
    redis_url: str, project: str, start: Callable[..., Any], encoder_dir: Path, search_dir: Path
) -> None:
    products = synthetic_products()
    await publish(redis_url, project, [product(p) for p in products])
    _, stub = await start(encoder_dir=encoder_dir, search_dir=search_dir)
    kind = products[5].kind
    viewed = [p.product_id for p in products if p.kind != kind][:3]
    client = redis.Redis.from_url(redis_url)
    for sid, queries in (("s-plain", []), ("s-searched", [kind])):
        state = SessionState(items=viewed, queries=queries, last_event_id="e1", updated_ms=int(time.time() * 1000))
        client.set(session_key(project, sid), state.to_json())
    client.close()
    plain = await stub.Recommend(pb.RecommendRequest(session_id="s-plain", k=6))
    searched = await stub.Recommend(pb.RecommendRequest(session_id="s-searched", k=6))
    from_search = [i for i in searched.items if i.reason.startswith("from your search")]
    assert not any(i.reason.startswith("from your search") for i in plain.items)
    assert len(from_search) == 2 and all(i.reason == f"from your search '{kind}'" for i in from_search)
    kinds = {p.product_id: p.kind for p in products}
    assert all(kinds[i.item_id] == kind for i in from_search) and len(searched.items) == 6
