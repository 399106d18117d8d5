"""What `streamrec up` trains its model on: the real clickstream when ../shared/data has it, else synthetic sessions.

The choice is a function of the option and the files present, tested on empty stand-in files; training itself
runs once, on a small seeded synthetic clickstream, to show that a registry with a version is reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.artifact import list_versions
from streamrec.devstack.stack import (
    REAL_DATASET,
    StackOptions,
    choose_training,
    describe_model,
    ensure_model,
)
from streamrec.training.datasets import DATASETS, DEFAULT_DATA_DIR
from streamrec.up import up_options

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / DEFAULT_DATA_DIR).resolve()
TRAIN_FILE, TEST_FILE = DATASETS[REAL_DATASET].files


def fake_data_dir(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_auto_trains_on_the_real_clickstream_when_its_files_are_there(tmp_path: Path) -> None:
    data = fake_data_dir(tmp_path / "data", TRAIN_FILE, TEST_FILE)
    choice = choose_training("auto", data)
    assert choice.dataset == "yoochoose-100k" and choice.data_dir == data
    assert str(data / TRAIN_FILE) in choice.message and "training split" in choice.message
    assert TEST_FILE in choice.message and "held out" in choice.message


def test_auto_falls_back_to_synthetic_and_names_the_missing_file(tmp_path: Path) -> None:
    absent = choose_training("auto", tmp_path / "no-such-dir")
    assert absent.dataset is None and absent.data_dir is None
    assert str(tmp_path / "no-such-dir" / TRAIN_FILE) in absent.message and "synthetic" in absent.message
    half = choose_training("auto", fake_data_dir(tmp_path / "half", TRAIN_FILE))
    assert half.dataset is None and str(tmp_path / "half" / TEST_FILE) in half.message


def test_synthetic_is_kept_even_when_the_data_are_there(tmp_path: Path) -> None:
    choice = choose_training("synthetic", fake_data_dir(tmp_path / "data", TRAIN_FILE, TEST_FILE))
    assert choice.dataset is None and "synthetic" in choice.message


def test_only_up_opts_in() -> None:
    """The demo, the benchmarks and the tests build StackOptions without `train_on`: they stay synthetic."""
    assert StackOptions().train_on == "synthetic"
    options = up_options(Path("state"))
    assert options.train_on == "auto" and options.registry == Path("state/registry")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"the real data directory {SHARED_DATA} is absent")
def test_the_shared_data_directory_holds_the_dataset_up_trains_on() -> None:
    choice = choose_training("auto", SHARED_DATA)
    assert choice.dataset == REAL_DATASET, choice.message


def test_a_trained_registry_is_reused_and_says_what_it_was_trained_on(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    options = StackOptions(train_on="auto", data_dir=tmp_path / "no-data", train_sessions=200, train_epochs=1)
    first = ensure_model(registry, options)
    versions = list_versions(registry)
    assert len(versions) == 1 and first.startswith(f"published model {versions[0]} ")
    assert "trained on synthetic" in first
    second = ensure_model(registry, options)
    assert list_versions(registry) == versions
    assert second.startswith("reusing model " + versions[0]) and "trained on synthetic" in second
    assert describe_model(registry) == f"model {versions[0]} (gru4rec) trained on synthetic"
