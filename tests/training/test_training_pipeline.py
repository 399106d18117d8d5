"""Dataset -> trained, exported, published model; evaluation of every model; CLI behaviour without data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamrec import artifact
from streamrec.training import cli
from streamrec.training.canonical import write_parquet
from streamrec.training.datasets import Dataset, load_dataset
from streamrec.training.evaluate import evaluate_dataset
from streamrec.training.pipeline import CHECKPOINT, CURVE, export_checkpoint, train_on_dataset
from streamrec.training.sequences import events_frame
from streamrec.training.synthetic import SyntheticConfig, generate
from streamrec.training.variants import VARIANT_FILES

CONFIG = SyntheticConfig(n_items=80, n_sessions=600, seed=5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = write_parquet(events_frame(generate(CONFIG)), tmp_path_factory.mktemp("data") / "synthetic.parquet")
    return load_dataset(str(path), test_days=0.2, valid_days=0.2)  # the synthetic sessions span one day


@pytest.fixture(scope="module")
def published(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_on_dataset(dataset, "sasrec", tmp_path_factory.mktemp("reg"), epochs=2, progress=False, log=print)


def test_published_version_has_variants_checkpoint_and_curve(published: Path) -> None:
    manifest = artifact.verify(published)
    assert set(manifest.files) == {artifact.MODEL, artifact.VOCABULARY, CHECKPOINT, CURVE, *VARIANT_FILES.values()}
    assert manifest.model_type == "sasrec" and manifest.model_args["repeat_bias"] is True
    assert (published / CURVE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    variants = manifest.metrics["variants"]
    for name in ("fp32", "fp16", "int8"):
        entry = variants[name]
        assert entry["cpu_ms_batch1"] > 0 and entry["cpu_ms_batch64"] > 0
        assert abs(entry["hr@20_change"]) < 5 and abs(entry["mrr@20_change"]) < 5
    assert abs(variants["fp32"]["hr@20_change"]) < 0.5
    assert manifest.data["split"]["test_prefixes"] == manifest.metrics["test_prefixes"] > 0
    assert 1 <= manifest.metrics["epochs"] <= 2


def test_variants_agree_with_fp32_on_the_top_item(published: Path) -> None:
    feed = {"items": np.array([[1, 2, 3], [4, 5, 0]]), "lengths": np.array([3, 2])}
    tops = {
        name: ort.InferenceSession(str(published / file)).run(None, feed)[1][:, :5]
        for name, file in VARIANT_FILES.items()
    }
    for name in ("fp16", "int8"):
        assert (tops[name][:, 0] == tops["fp32"][:, 0]).mean() >= 0.5, name


def test_export_checkpoint_publishes_a_new_version(published: Path, dataset: Dataset, tmp_path: Path) -> None:
    version = export_checkpoint(published / CHECKPOINT, tmp_path, dataset)
    manifest = artifact.verify(version)
    assert manifest.model_args == artifact.load_manifest(published).model_args
    assert "variants" in manifest.metrics


def test_evaluate_every_model(dataset: Dataset) -> None:
    report = evaluate_dataset(dataset, ["pop", "s-pop", "item-knn", "v-sknn", "gru4rec"], progress=False)
    json.dumps(report)  # it must be JSON as it is
    assert set(report["models"]) == {"pop", "s-pop", "item-knn", "v-sknn", "gru4rec"}
    for row in report["models"].values():
        assert {"hr@20", "mrr@20", "ndcg@20", "train_seconds", "inference_ms_per_session"} <= row.keys()
    models = report["models"]
    assert models["gru4rec"]["hr@20"] > models["pop"]["hr@20"] + 20  # the successor structure is learnt
    assert report["split"]["test_prefixes"] > 0


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_named_dataset_without_data_dir_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    code = _run(["evaluate", "--dataset", "yoochoose-100k", "--data-dir", str(missing), "--json"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nowhere" in err and "Traceback" not in err


def test_unknown_model_and_missing_file_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["evaluate", "--dataset", str(tmp_path / "none.csv")]) == 2
    assert _run(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
