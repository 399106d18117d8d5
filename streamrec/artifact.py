"""Model artifacts and the registry that holds them: versioned directories with a manifest and checksums.

Layout of a registry (a plain directory; an S3-compatible store mirrors it file for file):

    REGISTRY/
      CURRENT                  the version the scorer serves unless told otherwise
      v20261130T110300Z-1a2b3c4d/
        model.onnx             the session model (inputs `items`, `lengths`; outputs `top_scores`, `top_items`)
        items.json             the vocabulary: a JSON list, index -> item_id, index 0 is padding ("")
        manifest.json          version, model type and arguments, data hash, metrics, I/O names, file checksums

A version is written into a hidden staging directory and renamed into place, so a reader never sees half of
one; `CURRENT` is replaced atomically the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamrec.errors import ArtifactError, ChecksumMismatch

MANIFEST = "manifest.json"
VOCABULARY = "items.json"
MODEL = "model.onnx"
ITEM_META = "item_meta.json"  # optional: {"categories": {item: category}, "prices": {item: price}}
CURRENT = "CURRENT"
FORMAT_VERSION = 1


# the model families a version may hold: neural session models, session kNN (training/knn_graph.py), and a blend
# of the two (training/hybrid.py)
NEURAL_MODEL_TYPES = ("gru4rec", "sasrec")
KNN_MODEL_TYPE = "v-sknn"
HYBRID_MODEL_TYPE = "hybrid"


@dataclass(frozen=True)
class Manifest:
    """What a scorer needs to know about a model without importing the code that trained it."""

    version: str
    model_type: str  # one of NEURAL_MODEL_TYPES, KNN_MODEL_TYPE or HYBRID_MODEL_TYPE
    model_args: dict[str, Any]
    n_items: int  # vocabulary size including the padding index 0
    max_seq_len: int
    candidates: int  # how many (score, item) pairs the model returns per session
    inputs: list[str] = field(default_factory=lambda: ["items", "lengths"])
    outputs: list[str] = field(default_factory=lambda: ["top_scores", "top_items"])
    popular_items: list[str] = field(default_factory=list)  # most frequent items in training, for fallbacks
    data: dict[str, Any] = field(default_factory=dict)  # source, sha256, counts
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    created_at: str = ""
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"version", "model_type", "model_args", "n_items", "max_seq_len", "candidates"} - raw.keys()
        if missing:
            raise ArtifactError(f"manifest lacks {sorted(missing)}")
        return cls(**{k: v for k, v in raw.items() if k in known})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version_name(now: float | None = None) -> str:
    """Sortable by time, unique by a random suffix: v20261130T110300Z-1a2b3c4d."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"v{stamp}-{uuid.uuid4().hex[:8]}"


def publish(
    registry: Path,
    files: dict[str, Path],
    manifest: Manifest,
    make_current: bool = True,
) -> Path:
    """Copy `files` into a new version directory of `registry` with a manifest that lists their checksums.

    `files` maps the name inside the artifact (e.g. "model.onnx") to a source path. Returns the new directory.
    """
    registry.mkdir(parents=True, exist_ok=True)
    staging = registry / f".staging-{manifest.version}-{uuid.uuid4().hex[:6]}"
    staging.mkdir()
    try:
        checksums = {}
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            checksums[name] = sha256_file(staging / name)
        final_manifest = Manifest(
            **{
                **asdict(manifest),
                "files": checksums,
                "created_at": manifest.created_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        (staging / MANIFEST).write_text(final_manifest.to_json())
        target = registry / manifest.version
        if target.exists():
            raise ArtifactError(f"version {manifest.version} already exists in {registry}")
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if make_current:
        set_current(registry, manifest.version)
    return target


def set_current(registry: Path, version: str) -> None:
    """Point CURRENT at `version` atomically (used for publishing and for rollback)."""
    if not (registry / version / MANIFEST).is_file():
        raise ArtifactError(f"no version {version!r} in {registry}")
    tmp = registry / f".{CURRENT}.{uuid.uuid4().hex[:6]}"
    tmp.write_text(version + "\n")
    os.replace(tmp, registry / CURRENT)


def list_versions(registry: Path) -> list[str]:
    """Published versions, oldest first."""
    if not registry.is_dir():
        return []
    return sorted(
        p.name for p in registry.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def current_version(registry: Path) -> str:
    """The version CURRENT names, else the newest published one."""
    pointer = registry / CURRENT
    if pointer.is_file():
        name = pointer.read_text().strip()
        if name:
            return name
    versions = list_versions(registry)
    if not versions:
        raise ArtifactError(f"no model versions in {registry}")
    return versions[-1]


def load_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} does not exist") from exc
    except (json.JSONDecodeError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid manifest: {exc}") from exc


def verify(version_dir: Path) -> Manifest:
    """Load the manifest and check every listed file's sha256; raise ChecksumMismatch on any difference."""
    manifest = load_manifest(version_dir)
    verify_listed(version_dir, manifest.files, (MODEL, VOCABULARY, *manifest.files))
    return manifest


def verify_listed(folder: Path, listed: Mapping[str, str], names: Iterable[str], what: str = "manifest") -> None:
    """Check that each of `names` is in `listed` (file name -> sha256), exists in `folder` and has that sha256:
    ArtifactError when one is not listed or missing, ChecksumMismatch when its bytes differ."""
    for name in dict.fromkeys(names):
        expected = listed.get(name)
        if expected is None:
            raise ArtifactError(f"{folder} {what} lists no {name}")
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{path} is listed in the {what} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumMismatch(f"{path}: sha256 {actual[:12]} != {what} {expected[:12]}")


def load_vocabulary(version_dir: Path) -> list[str]:
    items = json.loads((version_dir / VOCABULARY).read_text())
    if not isinstance(items, list) or not items or items[0] != "":
        raise ArtifactError(f"{version_dir / VOCABULARY} must be a list whose index 0 is the padding entry ''")
    return [str(i) for i in items]
