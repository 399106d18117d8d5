"""ONNX Runtime session model: verified artifact in, top candidates per session history out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamrec.artifact import ITEM_META, MODEL, Manifest, load_vocabulary, verify
from streamrec.errors import ScorerError

log = logging.getLogger(__name__)

PROVIDER_CHOICES = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def choose_providers(preference: str) -> list[str]:
    """Providers to ask ONNX Runtime for; a GPU provider named explicitly but not installed is an error."""
    available = ort.get_available_providers()
    if preference == "auto":
        wanted = [p for p in PROVIDER_CHOICES["tensorrt"] if p in available]
        return wanted or ["CPUExecutionProvider"]
    wanted = PROVIDER_CHOICES[preference]
    if wanted[0] not in available:
        raise ScorerError(
            f"providers={preference} asks for {wanted[0]}, but this onnxruntime offers only {available}; "
            "install the `gpu` extra on a GPU machine or use providers=cpu"
        )
    return wanted


class ModelRuntime:
    """One loaded model version; immutable once built, so a swap is a reference assignment."""

    def __init__(self, version_dir: Path, providers: str = "auto", threads: int = 1) -> None:
        self.manifest: Manifest = verify(version_dir)
        self.version = self.manifest.version
        self.vocabulary = load_vocabulary(version_dir)
        self.index = {item: i for i, item in enumerate(self.vocabulary) if i}
        self.categories = load_item_categories(version_dir, self.manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        wanted = choose_providers(providers)
        self.model_file = model_file_for(wanted[0], self.manifest)
        self.session = ort.InferenceSession(str(version_dir / self.model_file), options, providers=wanted)
        self.providers = self.session.get_providers()
        if wanted[0] not in self.providers:
            raise ScorerError(f"ONNX Runtime did not enable {wanted[0]} (got {self.providers})")
        self.max_seq_len = self.manifest.max_seq_len
        self.warm_up()
        log.info("model %s (%s) loaded with providers %s", self.version, self.model_file, self.providers)

    def warm_up(self) -> None:
        for batch in (1, 8):
            self.run(np.ones((batch, 3), dtype=np.int64), np.full(batch, 3, dtype=np.int64))

    def known(self, history: list[str]) -> list[int]:
        """The vocabulary indices of a history's known items, the last max_seq_len of them."""
        index = self.index
        return [index[i] for i in history if i in index][-self.max_seq_len :]

    def run(self, items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, indices = self.session.run(None, {"items": items, "lengths": lengths})
        return scores, indices

    def candidates(self, histories: list[list[str]], limit: int | None = None) -> list[list[tuple[str, float]] | None]:
        """Top candidates per history, best first (at most `limit`); None where no item of a history is known.

        A batch runs in groups of similar length (see `width_groups`): the session model's work grows with the
        padded width of its input, so one long history would otherwise make every row of a batch pay for it.
        """
        sequences = [self.known(h) for h in histories]
        out: list[list[tuple[str, float]] | None] = [None] * len(histories)
        vocab = self.vocabulary
        for rows in width_groups(sequences):
            scores, indices = self.run(*pad([sequences[row] for row in rows]))
            if limit is not None:
                scores, indices = scores[:, :limit], indices[:, :limit]
            score_rows, index_rows = scores.tolist(), indices.tolist()  # one conversion, not one per element
            for row, top, values in zip(rows, index_rows, score_rows, strict=True):
                out[row] = [(vocab[i], s) for i, s in zip(top, values, strict=True)]
        return out


def width_groups(sequences: list[list[int]]) -> list[list[int]]:
    """Row numbers of the non-empty sequences, grouped by padded width: lengths up to 1, 2, 4, 8, ... share a
    group. Right padding changes no row's result (the models are tested for it), so grouping changes no answer;
    it bounds the padding a row carries to less than its own length."""
    groups: dict[int, list[int]] = {}
    for row, seq in enumerate(sequences):
        if seq:
            groups.setdefault((len(seq) - 1).bit_length(), []).append(row)
    return [groups[width] for width in sorted(groups)]


def pad(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """A right-padded index matrix and the lengths, as the exported graph takes them."""
    if len(sequences) == 1:  # a page view's lone history: no padding to do
        return np.array(sequences, dtype=np.int64), np.array([len(sequences[0])], dtype=np.int64)
    width = max(len(seq) for seq in sequences)
    items = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        items[row, : len(seq)] = seq
    return items, np.array([len(seq) for seq in sequences], dtype=np.int64)


FP16_MODEL = "model.fp16.onnx"
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def model_file_for(provider: str, manifest: Manifest) -> str:
    """GPU providers run the fp16 variant when the version has one; the CPU provider runs fp32."""
    if provider in GPU_PROVIDERS and FP16_MODEL in manifest.files:
        return FP16_MODEL
    return MODEL


def load_item_categories(version_dir: Path, manifest: Manifest) -> dict[str, str]:
    """Item -> category from the artifact's optional item_meta.json ({"categories": {item: category}})."""
    if ITEM_META not in manifest.files:
        return {}
    meta = json.loads((version_dir / ITEM_META).read_text())
    return {str(k): str(v) for k, v in meta.get("categories", {}).items()}
