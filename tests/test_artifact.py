"""The model registry: atomic publish, CURRENT pointer, rollback, checksum verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.artifact import Manifest, current_version, list_versions, publish, set_current, verify
from streamrec.errors import ArtifactError, ChecksumMismatch


def make_version(registry: Path, tmp_path: Path, name: str) -> Path:
    model, vocab = tmp_path / f"{name}.onnx", tmp_path / f"{name}.json"
    model.write_bytes(b"onnx bytes " + name.encode())
    vocab.write_text(json.dumps(["", "a", "b"]))
    manifest = Manifest(version=name, model_type="test", model_args={}, n_items=3, max_seq_len=5, candidates=2)
    return publish(registry, {"model.onnx": model, "items.json": vocab}, manifest)


def test_publish_verify_and_rollback(tmp_path: Path) -> None:
    registry = tmp_path / "reg"
    first = make_version(registry, tmp_path, "v1")
    make_version(registry, tmp_path, "v2")
    assert list_versions(registry) == ["v1", "v2"] and current_version(registry) == "v2"
    assert verify(first).files["model.onnx"]
    set_current(registry, "v1")
    assert current_version(registry) == "v1"
    with pytest.raises(ArtifactError):
        set_current(registry, "v9")
    assert not [p for p in registry.iterdir() if p.name.startswith(".")]


def test_a_changed_file_fails_verification(tmp_path: Path) -> None:
    version = make_version(tmp_path / "reg", tmp_path, "v1")
    (version / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch):
        verify(version)


def test_publishing_an_existing_version_is_refused(tmp_path: Path) -> None:
    make_version(tmp_path / "reg", tmp_path, "v1")
    with pytest.raises(ArtifactError, match="already exists"):
        make_version(tmp_path / "reg", tmp_path, "v1")
