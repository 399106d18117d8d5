"""The ranking stage online: item features read from a real Redis equal the offline definition, hand-computed
candidate features, reordering by the ONNX ranker, and the loader's answers for versions with and without one."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from streamrec import artifact
from streamrec.errors import ArtifactError
from streamrec.features.ranker_inputs import (
    FEATURES,
    ITEM_BLOCK,
    ITEM_META,
    RANKER_INFO,
    RANKER_MODEL,
    UNKNOWN_ROW,
    ItemMeta,
    candidate_features,
    item_block,
)
from streamrec.features.session_store import SessionState
from streamrec.redis import FastRedis
from streamrec.serving.item_cache import ItemFeatureCache
from streamrec.serving.ranking import Rerankers, load_reranker
from streamrec.stream.adapters import RedisStateStore
from streamrec.stream.aggregates import AggregateApplier, AggregateInput
from streamrec.training.ranker_features import StreamAggregates
from streamrec.training.sequences import events_frame
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered

HOUR = 3_600_000


async def _replay_and_read(url: str, project: str, events: list, items: list[str]) -> tuple[np.ndarray, int]:
    """Apply `events` one by one as the worker does (aggregate script, then the Feast rows), then read the cache."""
    worker = FastRedis(url)  # the worker's client
    applier, store = AggregateApplier(worker, project, "events"), RedisStateStore(worker, project)
    for offset, e in enumerate(events):
        applied = await applier.apply([AggregateInput(0, offset, e.item_id, e.type, e.ts_ms, e.category_id, "")])
        await store.write({}, {}, applied)
    await worker.aclose()
    client = FastRedis(url)  # the scorer's client for the cache
    cache = ItemFeatureCache(client, project, trending_n=10_000)
    await cache.refresh()
    rows, now_ms = cache.gather(items), cache.snapshot.now_ms
    await client.aclose()
    return rows, now_ms


def test_online_item_features_equal_the_offline_definition(redis_url: str, project: str) -> None:
    # 30 hours of traffic, so the 1 h and 24 h windows both drop events, with purchases for the conversion rate
    config = SyntheticConfig(n_items=40, n_sessions=220, span_ms=30 * HOUR, p_cart=0.3, p_purchase=0.8, seed=3)
    events = generate_time_ordered(config)
    cut = next(n for n in range(len(events) * 3 // 4, len(events)) if events[n].ts_ms > events[n - 1].ts_ms)
    items = sorted({e.item_id for e in events}) + ["never-seen"]
    online, now_ms = asyncio.run(_replay_and_read(redis_url, project, events[:cut], items))
    assert now_ms == events[cut - 1].ts_ms  # the watermark: the stream's event-time "now"
    offline_rows = StreamAggregates(events_frame(events)).rows_at(
        np.array(items, dtype=object), np.full(len(items), events[cut].ts_ms)
    )
    offline = item_block(*offline_rows, now_ms)
    np.testing.assert_allclose(online, offline, rtol=1e-6, atol=1e-6)
    assert (online[:, :8] > 0).any() and (online[:, 9] > 0).any()  # counts and conversions were compared
    np.testing.assert_array_equal(online[-1], UNKNOWN_ROW)


def test_candidate_features_by_hand() -> None:
    meta = ItemMeta.from_maps({"a": "shoes", "b": "hats", "c": "shoes", "d": "shoes"}, {"a": 9.0, "c": 19.0})
    history = ["a", "b", "a", "c"]  # oldest first
    items, scores = ["c", "a", "d", "x"], [3.0, 2.5, 1.0, 0.5]
    rows = np.tile(UNKNOWN_ROW, (4, 1))
    x = candidate_features(history, items, scores, rows, meta)
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(col["retrieval_gap"], [0.0, -0.5, -2.0, -2.5])
    np.testing.assert_allclose(col["log_retrieval_rank"], np.log1p([0, 1, 2, 3]), rtol=1e-6)
    np.testing.assert_array_equal(col["in_session"], [1, 1, 0, 0])
    np.testing.assert_allclose(col["recency"], [1.0, 0.5, 0.0, 0.0])  # c is the last item, a two steps back
    np.testing.assert_allclose(col["log_session_count"], np.log1p([1, 2, 0, 0]), rtol=1e-6)
    np.testing.assert_array_equal(col["category_known"], [1, 1, 1, 0])
    np.testing.assert_array_equal(col["same_category_as_last"], [1, 1, 1, 0])  # the last item, c, is shoes
    np.testing.assert_allclose(col["category_share"], [0.75, 0.75, 0.75, 0.0])
    np.testing.assert_array_equal(col["price_known"], [1, 1, 0, 0])
    session_mean = math.log1p((9.0 + 9.0 + 19.0) / 3)  # known prices of the history: a, a, c
    np.testing.assert_allclose(
        col["log_price_ratio"], [math.log1p(19) - session_mean, math.log1p(9) - session_mean, 0, 0], rtol=1e-5
    )
    np.testing.assert_array_equal(x[:, 3 : 3 + len(ITEM_BLOCK)], rows)


def _linear_ranker(path: Path, weights: dict[str, float]) -> Path:
    """A ranker.onnx scoring features @ w: small enough to reason about, same interface as a trained one."""
    w = np.array([[weights.get(name, 0.0)] for name in FEATURES], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["m"]), helper.make_node("Squeeze", ["m", "axis"], ["scores"])],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", len(FEATURES)])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n"])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _version(tmp_path: Path, ranker: bool, features: tuple[str, ...] = FEATURES) -> Path:
    files = {artifact.MODEL: tmp_path / "m.onnx", artifact.VOCABULARY: tmp_path / "items.json"}
    files[artifact.MODEL].write_bytes(b"not loaded here")
    files[artifact.VOCABULARY].write_text(json.dumps(["", "a", "b", "c"]))
    if ranker:
        files[RANKER_MODEL] = _linear_ranker(tmp_path / RANKER_MODEL, {"recency": 10.0, "retrieval_score": 1.0})
        files[RANKER_INFO] = tmp_path / RANKER_INFO
        files[RANKER_INFO].write_text(json.dumps({"features": list(features)}))
        files[ITEM_META] = tmp_path / ITEM_META
        files[ITEM_META].write_text(json.dumps({"categories": {"a": "x"}, "prices": {}}))
    manifest = artifact.Manifest(artifact.new_version_name(), "gru4rec", {}, 4, 50, 3)
    return artifact.publish(tmp_path / "registry", files, manifest)


def test_load_reranker_returns_none_without_ranker_files(tmp_path: Path) -> None:
    cache = ItemFeatureCache(None, "p")
    assert load_reranker(_version(tmp_path, ranker=False), cache) is None


def test_load_reranker_refuses_other_features(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="other features"):
        load_reranker(_version(tmp_path, ranker=True, features=FEATURES[:-1]), ItemFeatureCache(None, "p"))


def test_rerankers_fall_back_to_retrieval_order_for_an_unusable_ranker(tmp_path: Path) -> None:
    rerankers = Rerankers(ItemFeatureCache(None, "p"))
    bad = _version(tmp_path, ranker=True, features=FEATURES[:-1])
    assert rerankers.get(bad) is None and rerankers.get(bad) is None  # logged once, not raised per request


def test_reranker_orders_by_ranker_scores(tmp_path: Path) -> None:
    cache = ItemFeatureCache(None, "p")
    reranker = load_reranker(_version(tmp_path, ranker=True), cache)
    assert reranker is not None
    candidates = [("c", 3.0), ("b", 2.0), ("a", 1.0)]
    # recency weighs 10: a (the last item) first, b (two steps back, 10/2 + 2) next, then c (never seen, 3)
    got = asyncio.run(reranker.rerank(SessionState(items=["b", "a"]), candidates))
    assert [item for item, _ in got] == ["a", "b", "c"]
    assert [score for _, score in got] == pytest.approx([11.0, 7.0, 3.0])
    assert asyncio.run(reranker.rerank(SessionState(items=["b"]), [])) == []
    assert set(cache._recent) == {"a", "b", "c"}  # the next refresh reads these items' rows
