"""Model distribution through a remote registry (a local directory standing in for S3): publish, pull with
verification, atomic CURRENT, rollback, pruning, the poll loop, and a scorer following a sync."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import streamrec.registry_sync as sync
from streamrec.artifact import (
    CURRENT,
    MANIFEST,
    MODEL,
    VOCABULARY,
    Manifest,
    current_version,
    load_manifest,
    new_version_name,
)
from streamrec.artifact import publish as publish_local
from streamrec.artifact import verify as real_verify
from streamrec.errors import ArtifactError, ChecksumMismatch


def make_version(registry: Path, payload: bytes = b"onnx-bytes", when: float | None = None) -> Path:
    """A small artifact (the checksums are what matter here, not a loadable model) in a local registry."""
    source = registry.parent / f"src-{time.monotonic_ns()}"
    source.mkdir(parents=True)
    (source / MODEL).write_bytes(payload)
    (source / VOCABULARY).write_text(json.dumps(["", "a", "b"]))
    manifest = Manifest(new_version_name(when), "gru4rec", {"hidden": 8}, n_items=3, max_seq_len=4, candidates=2)
    return publish_local(registry, {MODEL: source / MODEL, VOCABULARY: source / VOCABULARY}, manifest)


@pytest.fixture(params=["path", "file-url"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The remote registry, once as a plain path and once as a file:// URL (fsspec resolves both)."""
    root = tmp_path / "remote" / "registry"
    return str(root) if request.param == "path" else root.as_uri()


@pytest.fixture
def trainer_registry(tmp_path: Path) -> Path:
    return tmp_path / "trainer"


@pytest.fixture
def edge(tmp_path: Path) -> Path:
    return tmp_path / "edge"


def remote_dir(remote: str) -> Path:
    return Path(remote.removeprefix("file://"))


def leftovers(local: Path) -> list[str]:
    return sorted(p.name for p in local.iterdir() if p.name.startswith(".staging"))


def test_publish_then_sync_makes_the_version_current_on_the_edge(
    remote: str, trainer_registry: Path, edge: Path
) -> None:
    version_dir = make_version(trainer_registry)
    result = sync.publish(version_dir, remote)
    assert result == sync.PublishResult(version_dir.name, uploaded=True)
    assert sync.remote_versions(remote) == [version_dir.name]
    assert sync.remote_current(remote) == version_dir.name

    assert sync.sync_once(remote, edge) == sync.SyncResult(version_dir.name, downloaded=True, changed=True)
    assert sync.local_current(edge) == version_dir.name
    assert real_verify(edge / version_dir.name).files == load_manifest(version_dir).files
    assert sync.sync_once(remote, edge) == sync.SyncResult(version_dir.name, downloaded=False, changed=False)
    assert leftovers(edge) == []


def test_an_empty_remote_changes_nothing(remote: str, edge: Path) -> None:
    assert sync.sync_once(remote, edge) == sync.SyncResult(None, False, False)
    assert sync.local_current(edge) is None


def test_a_corrupted_remote_file_is_rejected_and_never_made_current(
    remote: str, trainer_registry: Path, edge: Path
) -> None:
    good = make_version(trainer_registry, b"good", when=1_000_000)
    sync.publish(good, remote)
    sync.sync_once(remote, edge)
    bad = make_version(trainer_registry, b"new", when=2_000_000)
    sync.publish(bad, remote)
    (remote_dir(remote) / bad.name / MODEL).write_bytes(b"flipped on the way")

    with pytest.raises(ChecksumMismatch):
        sync.sync_once(remote, edge)
    assert sync.local_current(edge) == good.name
    assert not (edge / bad.name).exists() and leftovers(edge) == []


def test_a_file_missing_remotely_is_rejected(remote: str, trainer_registry: Path, edge: Path) -> None:
    version_dir = make_version(trainer_registry)
    sync.publish(version_dir, remote)
    (remote_dir(remote) / version_dir.name / VOCABULARY).unlink()
    with pytest.raises(ArtifactError, match="missing remotely"):
        sync.sync_once(remote, edge)
    assert sync.local_current(edge) is None and leftovers(edge) == []


def test_current_moves_only_after_the_version_is_verified_and_in_place(
    remote: str, trainer_registry: Path, edge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_version(trainer_registry, b"old", when=1_000_000)
    sync.publish(old, remote)
    sync.sync_once(remote, edge)
    new = make_version(trainer_registry, b"new", when=2_000_000)
    sync.publish(new, remote)
    seen: list[tuple[str | None, bool]] = []

    def spy(version_dir: Path) -> Manifest:
        seen.append((sync.local_current(edge), (edge / new.name).exists()))
        return real_verify(version_dir)

    monkeypatch.setattr(sync, "verify", spy)
    sync.sync_once(remote, edge)
    assert seen == [(old.name, False)]  # verification ran while CURRENT was old and the version not yet visible
    assert sync.local_current(edge) == new.name


def test_rollback_on_the_remote_propagates_to_edges(
    remote: str, trainer_registry: Path, edge: Path, tmp_path: Path
) -> None:
    v1 = make_version(trainer_registry, b"one", when=1_000_000)
    v2 = make_version(trainer_registry, b"two", when=2_000_000)
    sync.publish(v1, remote)
    sync.sync_once(remote, edge)
    sync.publish(v2, remote)
    assert sync.sync_once(remote, edge).version == v2.name

    sync.set_remote_current(remote, v1.name)
    assert sync.sync_once(remote, edge) == sync.SyncResult(v1.name, downloaded=False, changed=True)
    assert sync.local_current(edge) == v1.name
    fresh_edge = tmp_path / "fresh-edge"
    assert sync.sync_once(remote, fresh_edge) == sync.SyncResult(v1.name, downloaded=True, changed=True)


def test_a_version_without_its_manifest_is_invisible(remote: str, trainer_registry: Path) -> None:
    version_dir = make_version(trainer_registry)
    half = remote_dir(remote) / "v20990101T000000Z-deadbeef"
    half.mkdir(parents=True)
    (half / MODEL).write_bytes(b"upload interrupted before the manifest")
    sync.publish(version_dir, remote)
    assert sync.remote_versions(remote) == [version_dir.name]
    with pytest.raises(ArtifactError, match="no version"):
        sync.set_remote_current(remote, half.name)
    assert sync.remote_current(remote) == version_dir.name


def test_publish_is_idempotent_and_refuses_other_contents_under_the_same_name(
    remote: str, trainer_registry: Path, tmp_path: Path
) -> None:
    version_dir = make_version(trainer_registry)
    assert sync.publish(version_dir, remote).uploaded
    assert not sync.publish(version_dir, remote).uploaded

    other = tmp_path / "other" / version_dir.name
    other.parent.mkdir()
    manifest = dataclasses.replace(load_manifest(version_dir), files={})
    publish_local(other.parent, {MODEL: version_dir / VOCABULARY, VOCABULARY: version_dir / VOCABULARY}, manifest)
    with pytest.raises(ArtifactError, match="other contents"):
        sync.publish(other, remote)


def test_publish_refuses_a_damaged_local_version(remote: str, trainer_registry: Path) -> None:
    version_dir = make_version(trainer_registry)
    (version_dir / MODEL).write_bytes(b"damaged on disk")
    with pytest.raises(ChecksumMismatch):
        sync.publish(version_dir, remote)
    assert sync.remote_versions(remote) == []


def test_publish_without_making_it_current(remote: str, trainer_registry: Path) -> None:
    v1, v2 = make_version(trainer_registry, when=1_000_000), make_version(trainer_registry, when=2_000_000)
    sync.publish(v1, remote)
    sync.publish(v2, remote, make_current=False)
    assert sync.remote_current(remote) == v1.name and sync.remote_versions(remote) == [v1.name, v2.name]


@pytest.mark.parametrize("pointer", ["../../etc", "v1/../../x", ".hidden"])
def test_a_remote_current_that_is_not_a_plain_name_is_rejected(remote: str, edge: Path, pointer: str) -> None:
    root = remote_dir(remote)
    root.mkdir(parents=True)
    (root / CURRENT).write_text(pointer)
    with pytest.raises(ArtifactError, match="not a plain"):
        sync.sync_once(remote, edge)


def test_a_manifest_naming_files_outside_its_version_is_rejected(
    remote: str, trainer_registry: Path, edge: Path
) -> None:
    version_dir = make_version(trainer_registry)
    sync.publish(version_dir, remote)
    manifest_path = remote_dir(remote) / version_dir.name / MANIFEST
    raw = json.loads(manifest_path.read_text())
    raw["files"]["../../escape"] = "0" * 64
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="not a plain"):
        sync.sync_once(remote, edge)
    assert not (edge.parent / "escape").exists()


def test_a_local_copy_damaged_on_disk_is_fetched_again(remote: str, trainer_registry: Path, edge: Path) -> None:
    version_dir = make_version(trainer_registry)
    sync.publish(version_dir, remote)
    sync.sync_once(remote, edge)
    (edge / version_dir.name / MODEL).write_bytes(b"bit rot")
    assert sync.pull(remote, edge, version_dir.name) == edge / version_dir.name
    real_verify(edge / version_dir.name)


def test_prune_keeps_the_newest_and_never_current(remote: str, trainer_registry: Path, edge: Path) -> None:
    versions = [make_version(trainer_registry, bytes([n]), when=1_000_000 + n) for n in range(4)]
    for version_dir in versions:
        sync.publish(version_dir, remote)
        sync.sync_once(remote, edge)
    sync.set_remote_current(remote, versions[0].name)  # rolled back to the oldest
    sync.sync_once(remote, edge)
    removed = sync.prune_local(edge, keep=2)
    assert removed == [versions[1].name]
    assert sorted(p.name for p in edge.iterdir() if p.is_dir()) == sorted(v.name for v in (versions[0], *versions[2:]))


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_sync_forever_follows_the_remote_and_survives_bad_uploads(
    remote: str, trainer_registry: Path, edge: Path
) -> None:
    v1 = make_version(trainer_registry, b"one", when=1_000_000)
    sync.publish(v1, remote)
    stop = threading.Event()
    thread = threading.Thread(target=sync.sync_forever, args=(remote, edge, 0.02), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: sync.local_current(edge) == v1.name)
        bad = make_version(trainer_registry, b"two", when=2_000_000)
        sync.publish(bad, remote, make_current=False)
        (remote_dir(remote) / bad.name / MODEL).write_bytes(b"damaged")
        sync.set_remote_current(remote, bad.name)
        time.sleep(0.3)
        assert sync.local_current(edge) == v1.name and thread.is_alive()

        v3 = make_version(trainer_registry, b"three", when=3_000_000)
        sync.publish(v3, remote)
        assert wait_until(lambda: sync.local_current(edge) == v3.name, timeout_s=15)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_wait_for_model_uses_a_local_version_when_the_remote_is_broken(
    remote: str, trainer_registry: Path, edge: Path
) -> None:
    version_dir = make_version(trainer_registry)
    sync.publish(version_dir, remote)
    assert sync.wait_for_model(remote, edge, timeout_s=5) == version_dir.name
    (remote_dir(remote) / CURRENT).write_text("v20990101T000000Z-00000000")  # names a version that is not there
    assert sync.wait_for_model(remote, edge, timeout_s=0) == version_dir.name


def test_wait_for_model_gives_up_when_nothing_arrives(remote: str, edge: Path) -> None:
    with pytest.raises(ArtifactError, match="no model version"):
        sync.wait_for_model(remote, edge, timeout_s=0.2, poll_s=0.05)


async def test_a_scorer_hot_reloads_what_the_sync_makes_current(trained_registry: Path, tmp_path: Path) -> None:
    """The real path: trainer registry → remote → edge registry → ModelHolder swap on its next poll."""
    from streamrec.serving.model_store import ModelHolder

    remote = str(tmp_path / "remote")
    edge = tmp_path / "edge"
    first = trained_registry / current_version(trained_registry)
    sync.publish(first, remote)
    sync.sync_once(remote, edge)
    holder = ModelHolder(edge, "cpu", 1)
    assert holder.runtime.version == first.name

    second_registry = tmp_path / "retrained"
    manifest = dataclasses.replace(load_manifest(first), version=new_version_name(), files={})
    second = publish_local(second_registry, {name: first / name for name in load_manifest(first).files}, manifest)
    sync.publish(second, remote)
    assert not await holder.check_for_update()  # nothing synced yet: the edge still says `first`
    sync.sync_once(remote, edge)
    assert await holder.check_for_update() and holder.runtime.version == second.name
