"""The second stage: an MLP over retrieval, stream, session, category and price features reorders the candidates.

The ranker's input is defined once, in features/ranker_inputs.py (`candidate_features`), and computed here
online and by training/ranker_features.py offline. The ranker itself is `ranker.onnx` in the model version
(input `features` float32 [N, F], output `scores` float32 [N], the feature normalisation inside the graph);
`ranker.json` names the features in order, and a version whose names differ from FEATURES is refused rather
than fed the wrong columns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from streamrec.artifact import load_manifest, sha256_file
from streamrec.errors import ArtifactError, ChecksumMismatch
from streamrec.features.ranker_inputs import (
    FEATURES,
    ITEM_META,
    RANKER_INFO,
    RANKER_MODEL,
    ItemMeta,
    candidate_features,
)
from streamrec.features.session_store import SessionState
from streamrec.serving.item_cache import ItemFeatureCache

log = logging.getLogger(__name__)
ORT_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.InvalidArgument,
)


class MlpReranker:
    """serving.recommender.Reranker over ranker.onnx; one ONNX Runtime session with one thread (the MLP is
    tiny, and a second thread costs more in hand-off than it saves)."""

    def __init__(self, model_path: Path, item_cache: ItemFeatureCache, meta: ItemMeta, version: str = "") -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.item_cache = item_cache
        self.meta = meta
        self.version = version

    def features(self, history: Sequence[str], candidates: Sequence[tuple[str, float]]) -> np.ndarray:
        items = [item for item, _ in candidates]
        scores = [score for _, score in candidates]
        return candidate_features(history, items, scores, self.item_cache.gather(items), self.meta)

    def score(self, features: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run(["scores"], {"features": features})[0]
        return out

    async def rerank(self, state: SessionState, candidates: list[tuple[str, float]]) -> list[tuple[str, float]]:
        if not candidates:
            return candidates
        scores = self.score(self.features(state.items, candidates))
        order = np.argsort(-scores, kind="stable")  # ties keep retrieval order
        values = scores.tolist()
        return [(candidates[i][0], values[i]) for i in order.tolist()]


def load_reranker(version_dir: Path, item_cache: ItemFeatureCache) -> MlpReranker | None:
    """The version's ranker, or None when it has none. Its files are checked against the manifest, and its
    feature names against FEATURES (ArtifactError on a ranker built for other features)."""
    manifest = load_manifest(version_dir)
    if RANKER_MODEL not in manifest.files or RANKER_INFO not in manifest.files:
        return None
    for name in (RANKER_MODEL, RANKER_INFO, ITEM_META):
        if name in manifest.files and sha256_file(version_dir / name) != manifest.files[name]:
            raise ChecksumMismatch(f"{version_dir / name} does not match its manifest checksum")
    info = json.loads((version_dir / RANKER_INFO).read_text())
    if tuple(info.get("features", ())) != FEATURES:
        raise ArtifactError(f"{version_dir / RANKER_INFO} was trained on other features than this scorer computes")
    try:
        return MlpReranker(version_dir / RANKER_MODEL, item_cache, ItemMeta.load(version_dir), manifest.version)
    except ORT_ERRORS as exc:
        raise ArtifactError(f"{version_dir / RANKER_MODEL} cannot be loaded: {exc}") from exc


class Rerankers:
    """One reranker per model version, loaded on first use: the server asks for the runtime it serves with, so a
    hot swap of the model brings its own ranker (or none) with it."""

    def __init__(self, item_cache: ItemFeatureCache) -> None:
        self.item_cache = item_cache
        self._loaded: dict[Path, MlpReranker | None] = {}

    def get(self, version_dir: Path) -> MlpReranker | None:
        """The version's reranker; None when it has none or it cannot be used (logged: retrieval order serves)."""
        if version_dir not in self._loaded:
            try:
                loaded = load_reranker(version_dir, self.item_cache)
            except (ArtifactError, OSError, ValueError) as exc:
                log.error("ranker of %s not used, serving retrieval order: %s", version_dir.name, exc)
                loaded = None
            # the one in service and the one before it: in-flight requests may still hold the old runtime
            self._loaded = {**dict(list(self._loaded.items())[-1:]), version_dir: loaded}
            self.item_cache.active = loaded is not None  # the newest version decides whether features are read
        return self._loaded[version_dir]
