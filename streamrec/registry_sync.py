"""Model distribution: publish versions to a remote registry and pull verified ones into an edge's local registry.

The remote registry mirrors the local layout of streamrec/artifact.py file for file (`REMOTE/CURRENT`,
`REMOTE/<version>/manifest.json`, ...) on any fsspec filesystem: `s3://bucket/prefix` in production (needs
s3fs; endpoint and credentials from the standard `AWS_*` variables or `storage_options`), `file://` or a plain
path in tests. Object stores have no rename and no transactions, so safety comes from the order of writes:

* publish uploads a version's files, then its manifest (a version without a manifest is invisible), then
  `CURRENT`; small pointer files are written to a temporary name and moved over the old one;
* pull downloads into a hidden staging directory, verifies every checksum (`streamrec.artifact.verify`),
  renames the directory into place, and only then moves the local `CURRENT`. The scorer's hot reload
  (serving/model_store.py) polls `CURRENT`, so it only ever sees complete, verified versions.

Rollback is the remote `CURRENT` pointing at an older version; edges follow it on their next sync.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from streamrec.artifact import CURRENT, MANIFEST, Manifest, list_versions, set_current, verify
from streamrec.errors import ArtifactError

log = logging.getLogger(__name__)

# Names read from a remote store become local paths: anything but a plain name could escape the registry.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_KEEP = 3  # local versions kept by sync_forever (CURRENT always among them): room for a quick rollback
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: the remote CURRENT it saw, whether it fetched files, whether local CURRENT moved."""

    version: str | None  # None: the remote has no CURRENT yet
    downloaded: bool
    changed: bool


@dataclass(frozen=True)
class PublishResult:
    version: str
    uploaded: bool  # False: the same version (same manifest bytes) was already there


@dataclass(frozen=True)
class RemoteRegistry:
    """A registry on an fsspec filesystem, addressed by its root path inside that filesystem."""

    fs: AbstractFileSystem
    root: str

    @classmethod
    def open(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> RemoteRegistry:
        fs, root = url_to_fs(url, **dict(storage_options or {}))
        return cls(fs, root.rstrip("/"))

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read(self, *parts: str) -> bytes | None:
        try:
            data = self.fs.cat_file(self.path(*parts))
        except FileNotFoundError:
            return None
        return bytes(data)

    def write_atomic(self, data: bytes, *parts: str) -> None:
        """Write to a temporary name, then move it over the target: a reader sees the old or the new bytes."""
        target = self.path(*parts)
        tmp = self.path(*parts[:-1], f".{parts[-1]}.tmp-{uuid.uuid4().hex[:8]}")
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, target)

    def current(self) -> str | None:
        raw = self.read(CURRENT)
        text = raw.decode(errors="replace").strip() if raw is not None else ""
        return check_name(text, "remote CURRENT") if text else None

    def versions(self) -> list[str]:
        found = (p.rstrip("/").split("/")[-2] for p in self.fs.glob(self.path("*", MANIFEST)))
        return sorted(name for name in found if SAFE_NAME.match(name))

    def refresh(self) -> None:
        # listings are cached per filesystem instance (s3fs especially); a poll must see the store as it is now
        self.fs.invalidate_cache()


def check_name(name: str, what: str) -> str:
    if not SAFE_NAME.match(name):
        raise ArtifactError(f"{what} {name!r} is not a plain version or file name")
    return name


def parse_manifest(raw: bytes, version: str) -> Manifest:
    try:
        manifest = Manifest.from_dict(json.loads(raw))
    except (json.JSONDecodeError, TypeError, AttributeError, UnicodeDecodeError) as exc:  # not a JSON object
        raise ArtifactError(f"manifest of {version} is not valid: {exc}") from exc
    if manifest.version != version:
        raise ArtifactError(f"manifest in {version}/ names version {manifest.version!r}")
    for name in manifest.files:
        check_name(name, f"file of {version}")
    return manifest


# -- publishing (core side) ------------------------------------------------------------------------------------
def publish(
    version_dir: Path, remote: str, make_current: bool = True, storage_options: Mapping[str, Any] | None = None
) -> PublishResult:
    """Upload a local version directory to `remote` (files, then manifest), then point CURRENT at it.

    The local copy is verified first: a damaged artifact is never distributed. Publishing the same version
    again is a no-op for its files; a different artifact under an existing version name is an error.
    """
    version = check_name(version_dir.name, "version")
    manifest = verify(version_dir)
    if manifest.version != version:
        raise ArtifactError(f"{version_dir} holds a manifest for version {manifest.version!r}")
    registry = RemoteRegistry.open(remote, storage_options)
    local_manifest = (version_dir / MANIFEST).read_bytes()
    existing = registry.read(version, MANIFEST)
    if existing is not None and existing != local_manifest:
        raise ArtifactError(f"version {version} already exists at {remote} with other contents")
    if existing is None:
        registry.fs.makedirs(registry.path(version), exist_ok=True)  # on S3 this creates a missing bucket
        for name in sorted(manifest.files):
            registry.fs.put_file(str(version_dir / name), registry.path(version, name))
        registry.write_atomic(local_manifest, version, MANIFEST)  # last: only now is the version visible
        log.info("published %s to %s", version, remote)
    if make_current:
        _set_current(registry, version)
    return PublishResult(version, existing is None)


def set_remote_current(remote: str, version: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Point the remote CURRENT at a published version (publishing, and rollback to an older one)."""
    _set_current(RemoteRegistry.open(remote, storage_options), version)


def _set_current(registry: RemoteRegistry, version: str) -> None:
    check_name(version, "version")
    if not registry.fs.exists(registry.path(version, MANIFEST)):
        raise ArtifactError(f"no version {version!r} at {registry.root}")
    registry.write_atomic((version + "\n").encode(), CURRENT)
    log.info("remote CURRENT of %s -> %s", registry.root, version)


def remote_versions(remote: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Published versions at `remote`, oldest first (names sort by time)."""
    return RemoteRegistry.open(remote, storage_options).versions()


def remote_current(remote: str, storage_options: Mapping[str, Any] | None = None) -> str | None:
    return RemoteRegistry.open(remote, storage_options).current()


# -- pulling (edge side) ---------------------------------------------------------------------------------------
def pull(remote: str, local: Path, version: str, storage_options: Mapping[str, Any] | None = None) -> Path:
    """Fetch one version into the local registry (verified) without touching local CURRENT."""
    return _pull(RemoteRegistry.open(remote, storage_options), Path(local), version)[0]


def _pull(registry: RemoteRegistry, local: Path, version: str) -> tuple[Path, bool]:
    target = local / check_name(version, "version")
    if target.is_dir():
        try:
            verify(target)
            return target, False
        except ArtifactError as exc:  # damaged on local disk: fetch it again rather than serve it
            log.warning("local copy of %s fails verification, fetching it again: %s", version, exc)
    raw = registry.read(version, MANIFEST)
    if raw is None:
        raise ArtifactError(f"no version {version!r} at {registry.root}")
    manifest = parse_manifest(raw, version)
    local.mkdir(parents=True, exist_ok=True)
    staging = local / f".staging-pull-{version}-{uuid.uuid4().hex[:6]}"
    staging.mkdir()
    try:
        for name in manifest.files:
            try:
                registry.fs.get_file(registry.path(version, name), str(staging / name))
            except FileNotFoundError as exc:
                raise ArtifactError(f"{version}/{name} is listed in the manifest but missing remotely") from exc
        (staging / MANIFEST).write_bytes(raw)
        verify(staging)  # ChecksumMismatch here leaves the registry and its CURRENT exactly as they were
        if target.exists():
            _remove_version(target)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("pulled %s from %s", version, registry.root)
    return target, True


def local_current(local: Path) -> str | None:
    """The version the local CURRENT names, or None (unlike artifact.current_version, no newest-version guess)."""
    pointer = Path(local) / CURRENT
    text = pointer.read_text().strip() if pointer.is_file() else ""
    return text or None


def sync_once(remote: str, local: Path, storage_options: Mapping[str, Any] | None = None) -> SyncResult:
    """Make the local registry serve the remote CURRENT: fetch and verify it if needed, then move local CURRENT."""
    return _sync(RemoteRegistry.open(remote, storage_options), Path(local))


def _sync(registry: RemoteRegistry, local: Path) -> SyncResult:
    registry.refresh()
    wanted = registry.current()
    if wanted is None:
        return SyncResult(None, False, False)
    _, downloaded = _pull(registry, local, wanted)
    changed = local_current(local) != wanted
    if changed:
        set_current(local, wanted)  # atomic replace; the scorer's next poll swaps to it
        log.info("local CURRENT of %s -> %s", local, wanted)
    return SyncResult(wanted, downloaded, changed)


def prune_local(local: Path, keep: int) -> list[str]:
    """Delete the oldest local versions beyond `keep`, never the one CURRENT names; returns what was removed."""
    current = local_current(local)
    versions = [v for v in list_versions(local) if not v.startswith(".")]
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != current]
    for version in doomed:
        _remove_version(local / version)
    return doomed


def _remove_version(version_dir: Path) -> None:
    # the manifest goes first, so listings stop seeing the version before its files disappear
    (version_dir / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(version_dir, ignore_errors=True)


def wait_for_model(
    remote: str,
    local: Path,
    timeout_s: float,
    poll_s: float = 1.0,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """At scorer start: sync until the local registry has a CURRENT version; returns it.

    A local version already present (a persistent volume) is good enough when the remote is unreachable, so an
    edge restarts and serves while the core is away. Raises ArtifactError when nothing arrives in time.
    """
    local = Path(local)
    registry = RemoteRegistry.open(remote, storage_options)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _sync(registry, local)
        except Exception as exc:  # remote backends raise their own error types; a start-up wait outlasts them
            log.warning("model registry %s not usable yet: %s", remote, exc)
        have = local_current(local)
        if have is not None and (local / have / MANIFEST).is_file():
            return have
        if time.monotonic() >= deadline:
            raise ArtifactError(f"no model version from {remote} within {timeout_s:.0f}s")
        time.sleep(poll_s)


def sync_forever(
    remote: str,
    local: Path,
    interval_s: float,
    stop: threading.Event | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keep: int = DEFAULT_KEEP,
) -> None:
    """Poll the remote CURRENT every `interval_s` until `stop` is set; run it in a thread next to the scorer.

    A failed round (remote down, a version that fails verification) is logged and retried with doubling
    delays up to MAX_BACKOFF_S, so a bad upload is not downloaded in a tight loop; the scorer keeps serving
    the version it has. After a change, versions beyond `keep` are pruned (0 keeps everything).
    """
    stop = stop or threading.Event()
    local = Path(local)
    registry = RemoteRegistry.open(remote, storage_options)
    failures = 0
    while not stop.is_set():
        try:
            result = _sync(registry, local)
            failures = 0
            if result.changed and keep > 0:
                prune_local(local, keep)
        except Exception as exc:  # remote backends raise their own error types; the loop must outlive them
            failures += 1
            log.error("model sync from %s failed (%d in a row): %s", remote, failures, exc)
        delay = interval_s if failures == 0 else min(MAX_BACKOFF_S, interval_s * 2 ** min(failures, 12))
        stop.wait(delay)
