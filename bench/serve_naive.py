"""The naive scorer the serve benchmark measures ours against: Feast SDK read + torch eager forward per request.

What a straightforward first version of the scorer would be: each Recommend reads the session's
`session_features:recent_items` with `FeatureStore.get_online_features`, runs the session model in torch eager
mode on that one history, and takes the top k. No batching and no fast Redis path. Both steps block, so they run
in the default thread pool (torch releases the GIL while it computes); the event loop keeps taking requests.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
import torch
from torch import nn

from streamrec.artifact import load_manifest, load_vocabulary
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc

log = logging.getLogger(__name__)

FEATURE = "session_features:recent_items"
DEFAULT_K = 20


class NaiveRecommender(recommender_pb2_grpc.RecommenderServicer):
    def __init__(self, store: Any, model: nn.Module, weights: str, version_dir: Path, device: str) -> None:
        manifest = load_manifest(version_dir)
        self.store = store
        self.weights = weights
        self.model_type = manifest.model_type
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.version = manifest.version
        self.max_seq_len = manifest.max_seq_len
        self.popular = manifest.popular_items
        self.vocabulary = load_vocabulary(version_dir)
        self.index = {item: i for i, item in enumerate(self.vocabulary) if i}

    def recent_items(self, session_id: str) -> list[str]:
        rows = self.store.get_online_features(features=[FEATURE], entity_rows=[{"session_id": session_id}])
        return rows.to_dict()["recent_items"][0] or []

    def top_k(self, history: list[str], k: int) -> list[tuple[str, float]]:
        known = [self.index[i] for i in history if i in self.index][-self.max_seq_len :]
        if not known:
            return [(item, 0.0) for item in self.popular[:k]]
        items = torch.tensor([known], dtype=torch.long, device=self.device)
        lengths = torch.tensor([len(known)], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            scores = self.model(items, lengths)[0].float()
            scores[0] = float("-inf")  # the padding index is no item
            top = torch.topk(scores, min(k, len(self.vocabulary) - 1))
        vocab = self.vocabulary
        return [(vocab[i], s) for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)]

    def recommend(self, session_id: str, k: int) -> list[tuple[str, float]]:
        return self.top_k(self.recent_items(session_id), k)

    async def Recommend(self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        ranked = await asyncio.to_thread(self.recommend, request.session_id, request.k or DEFAULT_K)
        return pb.RecommendResponse(
            items=[pb.ScoredItem(item_id=i, score=s, reason="session model") for i, s in ranked],
            model_version=self.version,
            fallback=False,
            state_age_ms=0,
            source="naive",
        )

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        """What runs here, for the result: torch's device and where the weights came from stand as providers."""
        return pb.InfoResponse(
            model_version=self.version,
            model_type=self.model_type,
            providers=[f"torch:{self.device}", f"weights:{self.weights}"],
        )


def naive_recommender(
    version_dir: Path, project: str, redis_url: str, feast_dir: Path, device: str
) -> NaiveRecommender:
    """Apply the Feast registry, load the torch model and warm both up."""
    from streamrec.bench.serve_torch import load_torch_model
    from streamrec.features.feast_apply import apply

    torch.set_num_threads(1)  # like ours (ort_threads=1): one intra-op thread is the fastest here
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("torch has no CUDA here: the naive scorer runs on the CPU (reported in its Info)")
        device = "cpu"
    store = apply(project, redis_url, feast_dir).store
    model, weights = load_torch_model(version_dir)
    servicer = NaiveRecommender(store, model, weights, version_dir, device)
    servicer.recommend("__warm_up__", DEFAULT_K)  # the first read loads the registry
    servicer.top_k(servicer.vocabulary[1:4], DEFAULT_K)
    return servicer
