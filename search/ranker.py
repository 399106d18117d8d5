"""The search ranker's run time: its ONNX graph (training/search_ranker.py) from candidate features to relevance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamrec.errors import ArtifactError
from streamrec.search.candidates import FEATURES

RANKER_FILE = "ranker.onnx"


class SearchRanker:
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        width = session.get_inputs()[0].shape[1]
        if width != len(FEATURES):
            raise ArtifactError(f"the search ranker reads {width} features, this scorer computes {len(FEATURES)}")

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> SearchRanker:
        if not path.is_file():
            raise ArtifactError(f"no search ranker at {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return cls(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's predicted relevance (1 .. 3) and score (the answer's order: training/search_ranker.py)."""
        if not len(features):
            empty = np.zeros(0, dtype=np.float32)
            return empty, empty
        relevance, score = self.session.run(None, {"features": np.asarray(features, dtype=np.float32)})
        return np.asarray(relevance, dtype=np.float32).reshape(-1), np.asarray(score, dtype=np.float32).reshape(-1)
