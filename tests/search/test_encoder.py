"""The encoder's run time: unit float32 rows, int8 close to fp32, meaning kept, batching that changes nothing,
truncation at max_length, checksums enforced, and no torch imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import ArtifactError, ChecksumMismatch
from streamrec.search.encoder import (
    DEFAULT_CACHE,
    ENCODER_DIR_ENV,
    ENCODER_VERSION,
    MANIFEST,
    TOKENIZER,
    VARIANT_FILES,
    TextEncoder,
    default_encoder_dir,
)
from tests.search.exported import DEGENERATE_TEXTS, PRODUCT_TEXTS, exported_encoder

VARIANTS = list(VARIANT_FILES)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_encoder(tmp_path_factory)


@pytest.fixture(scope="module")
def encoders(encoder_dir: Path) -> dict[str, TextEncoder]:
    return {variant: TextEncoder.load(encoder_dir, variant) for variant in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_rows_are_unit_float32_vectors(encoders: dict[str, TextEncoder], variant: str) -> None:
    vectors = encoders[variant].encode(PRODUCT_TEXTS + DEGENERATE_TEXTS)
    assert vectors.shape == (len(PRODUCT_TEXTS) + len(DEGENERATE_TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_stays_close_to_fp32(encoders: dict[str, TextEncoder]) -> None:
    # measured (AVX-512 VNNI CPU): titles and queries 0.991..0.995, [CLS][SEP] alone (an empty text) 0.979
    fp32, int8 = encoders["fp32"].encode(PRODUCT_TEXTS), encoders["int8"].encode(PRODUCT_TEXTS)
    cosines = (fp32 * int8).sum(axis=1)
    assert cosines.min() >= 0.985, dict(zip(PRODUCT_TEXTS, cosines.round(4), strict=True))
    assert cosines.mean() >= 0.99
    degenerate = (encoders["fp32"].encode(DEGENERATE_TEXTS) * encoders["int8"].encode(DEGENERATE_TEXTS)).sum(axis=1)
    assert degenerate.min() >= 0.97


QUERIES = ["cordless drill", "toilet seat", "black interior paint", "patio door roller"]
TITLES = [
    "DEWALT 20V MAX Cordless Drill/Driver Kit",
    "Glacier Bay Round Closed Front Toilet Seat in White",
    "Behr Premium Plus 1-gal. Jet Black Satin Enamel Interior Paint",
    "Prime-Line Sliding Glass Door Roller Assembly",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_query_is_closest_to_its_product(encoders: dict[str, TextEncoder], variant: str) -> None:
    similarity = encoders[variant].encode(QUERIES) @ encoders[variant].encode(TITLES).T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3], similarity.round(3)
    assert list(similarity.argmax(axis=0)) == [0, 1, 2, 3], similarity.round(3)
    # "cordless drill": the drill well above the toilet seat (measured 0.60 against 0.02)
    assert similarity[0, 0] - similarity[0, 1] > 0.3


def test_fp32_batches_give_what_one_by_one_gives(encoder_dir: Path) -> None:
    texts = PRODUCT_TEXTS + DEGENERATE_TEXTS
    batched = TextEncoder.load(encoder_dir, batch_size=4).encode(texts)
    alone = np.concatenate([TextEncoder.load(encoder_dir).encode([t]) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-6)  # measured 3e-8


def test_int8_batches_move_a_text_by_quantisation_noise_only(encoder_dir: Path) -> None:
    """Dynamic quantisation takes one activation scale per run, over the whole batch, so an int8 row depends a
    little on its batch companions: as much as it differs from fp32, not more (measured 0.989..0.993 on
    product texts, 0.973 for [CLS][SEP] alone)."""
    texts = PRODUCT_TEXTS + DEGENERATE_TEXTS
    batched = TextEncoder.load(encoder_dir, "int8", batch_size=4).encode(texts)
    alone = np.concatenate([TextEncoder.load(encoder_dir, "int8").encode([t]) for t in texts])
    cosines = (batched * alone).sum(axis=1)
    assert cosines[: len(PRODUCT_TEXTS)].min() >= 0.985, cosines.round(4)
    assert cosines.min() >= 0.96, cosines.round(4)


def test_batches_pad_to_their_longest_text_only(encoders: dict[str, TextEncoder]) -> None:
    encoder = encoders["fp32"]
    ids = encoder.token_ids(["ryobi", "cordless drill"])
    assert [len(i) for i in ids] == [5, 5]  # [CLS] ry ##ob ##i [SEP], [CLS] cord ##less drill [SEP]
    feed = encoder._batch([*ids, encoder.token_ids(["x"])[0]])
    assert feed["input_ids"].shape == (3, 5)
    assert feed["attention_mask"].tolist()[2] == [1, 1, 1, 0, 0]


def test_long_titles_are_cut_at_max_length(encoders: dict[str, TextEncoder]) -> None:
    encoder = encoders["fp32"]
    long_title = PRODUCT_TEXTS[-1]
    (ids,) = encoder.token_ids([long_title])
    assert len(ids) == encoder.manifest.max_length == 64
    assert ids[-1] == 102  # [SEP] still closes a truncated text
    longer = encoder.encode([long_title, long_title + " and a lifetime warranty from the manufacturer"])
    assert float(longer[0] @ longer[1]) > 0.99999


def test_the_tokenizer_normalises_case_and_accents(encoders: dict[str, TextEncoder]) -> None:
    encoder = encoders["fp32"]
    assert encoder.token_ids(["Façade ÉCLAIRAGE"]) == encoder.token_ids(["facade eclairage"])


def test_empty_input_and_a_bare_string(encoders: dict[str, TextEncoder]) -> None:
    assert encoders["fp32"].encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoders["fp32"].encode("cordless drill")


def _copy(encoder_dir: Path, target: Path) -> Path:
    """A copy that links the large graphs and copies the small files, so a test may change the small ones."""
    target.mkdir()
    for name in VARIANT_FILES.values():
        (target / name).symlink_to(encoder_dir / name)
    for name in (TOKENIZER, MANIFEST):
        (target / name).write_bytes((encoder_dir / name).read_bytes())
    return target


def test_a_changed_tokenizer_is_refused(encoder_dir: Path, tmp_path: Path) -> None:
    copy = _copy(encoder_dir, tmp_path / "encoder")
    with (copy / TOKENIZER).open("ab") as fh:
        fh.write(b" ")
    for variant in VARIANTS:
        with pytest.raises(ChecksumMismatch, match=r"tokenizer\.json"):
            TextEncoder.load(copy, variant)


def test_a_model_that_differs_from_its_manifest_is_refused(encoder_dir: Path, tmp_path: Path) -> None:
    copy = _copy(encoder_dir, tmp_path / "encoder")
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["encoder.int8.onnx"] = "0" * 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumMismatch, match=r"encoder\.int8\.onnx"):
        TextEncoder.load(copy, "int8")
    TextEncoder.load(copy, "fp32")  # each variant checks its own graph and the tokenizer


def test_missing_files_are_artifact_errors(encoder_dir: Path, tmp_path: Path) -> None:
    copy = _copy(encoder_dir, tmp_path / "encoder")
    (copy / VARIANT_FILES["int8"]).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        TextEncoder.load(copy, "int8")
    (copy / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="no encoder exported"):
        TextEncoder.load(copy, "fp32")
    with pytest.raises(ValueError, match="variant"):
        TextEncoder.load(encoder_dir, "fp16")  # type: ignore[arg-type]


def test_default_encoder_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENCODER_DIR_ENV, raising=False)
    assert default_encoder_dir() == DEFAULT_CACHE / ENCODER_VERSION == Path(".streamrec/encoder") / ENCODER_VERSION
    monkeypatch.setenv(ENCODER_DIR_ENV, str(tmp_path))
    assert default_encoder_dir() == tmp_path


def test_the_run_time_imports_no_torch(encoder_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from streamrec.search.encoder import TextEncoder; "
        f"TextEncoder.load(Path({str(encoder_dir)!r})).encode(['drill']); "
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
