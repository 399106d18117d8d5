"""A tiny deterministic text encoder for the catalogue's and engine's logic (the real one: test_encoder.py)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from streamrec.search.match import trigrams


class TrigramEncoder:
    """Hashed character trigrams, L2-normalised: texts that share spelling are near."""

    dim = 64

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for gram in trigrams(text):
                out[row, zlib.crc32(gram.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)
