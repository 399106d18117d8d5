"""The text encoder's run time: product titles and queries to L2-normalised sentence embeddings with ONNX Runtime.

An encoder directory (written by streamrec.training.text_encoder) holds:

    ENCODER_DIR/
      encoder.onnx          all-MiniLM-L6-v2 with mean pooling and L2 normalisation: inputs `input_ids`,
                            `attention_mask` int64 [B, T]; output `embeddings` float32 [B, 384]
      encoder.int8.onnx     the same graph with int8 MatMul weights (dynamic quantisation, per channel)
      tokenizer.json        the model's own WordPiece tokenizer (its normaliser lowercases and strips accents)
      encoder.json          the manifest: model, dim, max_length, pooling, sha256 of every file, parity figures

Texts go through the tokenizer and nothing else, at export-time checks and here alike. They are truncated at the
manifest's `max_length` tokens and padded per batch to the longest text of that batch, so a short query runs a
short graph. Only onnxruntime, numpy and `tokenizers` are imported: no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from streamrec.artifact import verify_listed
from streamrec.errors import ArtifactError

MANIFEST = "encoder.json"
TOKENIZER = "tokenizer.json"
VARIANT_FILES = {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "embeddings"
FORMAT_VERSION = 1
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
# Home Depot titles are at most 56 tokens with [CLS] and [SEP] (median 19), queries at most 27 (median 6)
DEFAULT_MAX_LENGTH = 64
DEFAULT_BATCH_SIZE = 64
# bump when the export changes what it writes, so the default cache directory never holds a stale encoder
ENCODER_VERSION = f"all-minilm-l6-v2-len{DEFAULT_MAX_LENGTH}-f{FORMAT_VERSION}"
ENCODER_DIR_ENV = "STREAMREC_ENCODER_DIR"
DEFAULT_CACHE = Path(".streamrec") / "encoder"

Variant = Literal["fp32", "int8"]


def default_encoder_dir() -> Path:
    """$STREAMREC_ENCODER_DIR when set, else .streamrec/encoder/<ENCODER_VERSION> under the current directory."""
    configured = os.environ.get(ENCODER_DIR_ENV)
    return Path(configured) if configured else DEFAULT_CACHE / ENCODER_VERSION


@dataclass(frozen=True)
class EncoderManifest:
    """What the run time needs to know about an exported encoder, and how well it matched the torch model."""

    model: str
    dim: int
    max_length: int
    pooling: str = "mean"
    normalized: bool = True
    inputs: list[str] = field(default_factory=lambda: list(INPUTS))
    output: str = OUTPUT
    source: dict[str, Any] = field(default_factory=dict)  # the package the weights came from, its version, sha256
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    parity: dict[str, Any] = field(default_factory=dict)  # cosines against the sentence-transformers model
    created_at: str = ""
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def read(cls, encoder_dir: Path) -> EncoderManifest:
        path = encoder_dir / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ArtifactError(f"{path} does not exist: no encoder exported there") from exc
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
        missing = {"model", "dim", "max_length", "files"} - raw.keys()
        if missing:
            raise ArtifactError(f"{path} lacks {sorted(missing)}")
        if raw.get("format") != FORMAT_VERSION:
            raise ArtifactError(f"{path} has format {raw.get('format')}, this streamrec reads {FORMAT_VERSION}")
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


def verify_files(encoder_dir: Path, manifest: EncoderManifest, names: Sequence[str]) -> None:
    """Check that each of `names` is listed in the manifest, exists, and has the listed sha256."""
    verify_listed(encoder_dir, manifest.files, names, what="encoder manifest")


class TextEncoder:
    """Encodes texts to float32 [n, dim] unit vectors; one ONNX Runtime session, reused across calls."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: EncoderManifest,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.session = session
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.batch_size = batch_size
        tokenizer.no_padding()  # padding is done per batch in `_batch`
        tokenizer.enable_truncation(manifest.max_length)

    @classmethod
    def load(
        cls,
        encoder_dir: Path,
        variant: Variant = "fp32",
        threads: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> TextEncoder:
        """Verify the variant's model and the tokenizer against the manifest's checksums, then load them."""
        if variant not in VARIANT_FILES:
            raise ValueError(f"variant must be one of {sorted(VARIANT_FILES)}, got {variant!r}")
        encoder_dir = Path(encoder_dir)
        manifest = EncoderManifest.read(encoder_dir)
        model = VARIANT_FILES[variant]
        verify_files(encoder_dir, manifest, [model, TOKENIZER])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(encoder_dir / model), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(encoder_dir / TOKENIZER))
        return cls(session, tokenizer, manifest, batch_size)

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text with [CLS] and [SEP], truncated at max_length; the tokenizer normalises."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim], each row of unit length, in the order of `texts`.

        Texts are grouped by token length before batching, so a batch pads little; results do not depend on
        the batch a text lands in (beyond float rounding)."""
        ids = self.token_ids(texts)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        order = np.argsort([len(i) for i in ids], kind="stable")
        for begin in range(0, len(order), self.batch_size):
            rows = order[begin : begin + self.batch_size]
            feed = self._batch([ids[r] for r in rows])
            out[rows] = self.session.run([OUTPUT], feed)[0]
        return out

    @staticmethod
    def _batch(ids: list[list[int]]) -> dict[str, np.ndarray]:
        """Right-padded input_ids and attention_mask, as wide as the longest sequence of this batch."""
        width = max(len(i) for i in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}
