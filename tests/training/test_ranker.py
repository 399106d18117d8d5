"""The ranker offline: point-in-time item aggregates by hand, session histories as the stream keeps them, the
exported ONNX ranker against torch, and a full train-and-publish run on the synthetic clickstream."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from streamrec import artifact
from streamrec.events import CanonicalEvent
from streamrec.features.ranker_inputs import FEATURES, ITEM_META, RANKER_INFO, RANKER_MODEL
from streamrec.features.session_store import SessionState
from streamrec.serving.item_cache import ItemFeatureCache
from streamrec.serving.ranking import load_reranker
from streamrec.stream.processor import apply_event
from streamrec.training.protocol import ProtocolConfig
from streamrec.training.ranker import RankerConfig, synthetic_dataset, train_ranker
from streamrec.training.ranker_features import RankerData, StreamAggregates, all_timed_prefixes, timed_sessions
from streamrec.training.ranker_model import RankerMLP, export_ranker, onnx_scores, ranks

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR  # an hour boundary, so buckets are easy to reason about


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "event_id": f"e{n}",
                "type": kind,
                "session_id": "s",
                "user_id": "",
                "item_id": item,
                "category_id": "",
                "price": math.nan,
                "quantity": 1,
                "ts_ms": ts,
            }
            for n, (item, kind, ts) in enumerate(rows)
        ]
    )


def test_item_rows_as_the_stream_holds_them_before_a_time() -> None:
    aggregates = StreamAggregates(
        _frame(
            [
                ("a", "view", T0),
                ("a", "purchase", T0 + 10 * MIN),
                ("a", "view", T0 + 2 * HOUR),
                ("a", "click", T0 + 3 * HOUR),
                ("b", "view", T0),
            ]
        )
    )
    items = np.array(["a", "a", "a", "b", "zzz"], dtype=object)
    times = np.array([T0 + 10 * MIN, T0 + 3 * HOUR, T0 + 3 * HOUR + 1, T0 + 49 * HOUR, T0 + HOUR])
    raw, row_ts, known = aggregates.rows_at(items, times)
    # just before the purchase: one view
    np.testing.assert_array_equal(raw[0, :8], [1, 0, 0, 0, 1, 0, 0, 0])
    assert raw[0, 8] == 1.0 and row_ts[0] == T0
    # strictly before the click at 3 h: the row is as of the view at 2 h; its 1 h window holds that view only
    np.testing.assert_array_equal(raw[1, :8], [1, 0, 0, 0, 2, 0, 0, 1])
    assert raw[1, 8] == pytest.approx(1 + 5 * 2 ** (-110 / 60) + 2**-2) and row_ts[1] == T0 + 2 * HOUR
    assert raw[1, 9] == pytest.approx(1 / 2)  # purchases_24h / (views_24h + clicks_24h)
    # one ms later the click counts, and the 1 h window now ends at 3 h: the view at 2 h is out of it
    np.testing.assert_array_equal(raw[2, :8], [0, 1, 0, 0, 2, 1, 0, 1])
    assert raw[2, 9] == pytest.approx(1 / 3)
    assert not known[3] and not raw[3].any()  # b's row expired: its last event is more than 2 days old
    assert not known[4]  # never seen


def test_histories_are_the_streams_session_state() -> None:
    dataset = synthetic_dataset(n_sessions=600, n_items=120)
    split = timed_sessions(dataset.events, dataset.protocol)
    events = dataset.events.sort_values(["session_id", "ts_ms"], kind="stable")
    by_session = {sid: group for sid, group in events.groupby("session_id")}
    checked = 0
    for session in split.valid[:40]:
        state, after = SessionState(), []
        for row in by_session[session.session_id].itertuples(index=False):
            apply_event(state, CanonicalEvent(**row._asdict()), 0)
            after.append((int(row.ts_ms), list(state.items)))
        prefixes = all_timed_prefixes([session])
        for history, t in zip(prefixes.histories, prefixes.times, strict=True):
            # the state after the last event at the prefix's time (carts and purchases do not enter state.items)
            assert history == [items for ts, items in after if ts <= t][-1]
            checked += 1
    assert checked > 40


def test_exported_ranker_equals_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(7, 30, len(FEATURES))).astype(np.float32) * 3
    torch.manual_seed(0)
    model = RankerMLP(len(FEATURES), (32, 16), features.mean(axis=(0, 1)), features.std(axis=(0, 1))).eval()
    data = RankerData(features, np.zeros(7, dtype=np.int64), features[:, :, 0], np.arange(7))
    got = onnx_scores(export_ranker(model, tmp_path / "r.onnx"), data)
    with torch.no_grad():
        want = model(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_ranks_count_strictly_higher_scores_and_misses() -> None:
    scores = np.array([[3.0, 2.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    assert ranks(scores, np.array([2, -1])).tolist() == [2, 1_000_000_000]


def test_ranker_trains_publishes_and_serves_on_synthetic_data(trained_registry: Path, tmp_path: Path) -> None:
    source = trained_registry / artifact.current_version(trained_registry)
    dataset = synthetic_dataset(n_sessions=2000)  # the sessions the shared test model was trained on
    version_dir = train_ranker(source, dataset, tmp_path / "reg", RankerConfig(epochs=8), log=lambda _: None)
    manifest = artifact.verify(version_dir)
    assert {RANKER_MODEL, RANKER_INFO, ITEM_META, artifact.MODEL, artifact.VOCABULARY} <= set(manifest.files)
    info = json.loads((version_dir / RANKER_INFO).read_text())
    assert info["features"] == list(FEATURES) and info["version"] == manifest.version
    assert info["retrieval_version"] == source.name and manifest.metrics["ranker"] == info["metrics"]
    assert json.loads((version_dir / ITEM_META).read_text())["categories"]  # synthetic items have categories
    metrics = info["metrics"]
    # the synthetic next item is often of the session's category: the ranker must not do worse than retrieval
    assert metrics["ranked"]["mrr@20"] >= metrics["retrieval"]["mrr@20"] - 0.5
    assert metrics["ranked"]["hr@20"] >= metrics["retrieval"]["hr@20"] - 0.5
    reranker = load_reranker(version_dir, ItemFeatureCache(None, "p"))
    assert reranker is not None
    candidates = [(item, 1.0 / (n + 1)) for n, item in enumerate(artifact.load_vocabulary(version_dir)[1:201])]
    reranked = asyncio.run(reranker.rerank(SessionState(items=[candidates[5][0]]), candidates))
    assert {i for i, _ in reranked} == {i for i, _ in candidates}  # a permutation of the candidates
    assert [s for _, s in reranked] == sorted((s for _, s in reranked), reverse=True)


def test_timed_split_is_the_protocols() -> None:
    dataset = synthetic_dataset(n_sessions=300, n_items=80)
    split = timed_sessions(dataset.events, ProtocolConfig(0.2, 0.2))  # raises if it differs from make_split
    assert split.valid and split.test and all(len(s.items) == len(s.times) == len(s.seen) for s in split.test)
