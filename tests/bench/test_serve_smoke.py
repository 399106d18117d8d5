"""`bench serve` end to end on a tiny run: every key of its JSON line with sane values (no timing asserts), the
clear failure of a GPU provider on a machine without one, and the naive scorer's torch model matching ours."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamrec.artifact import current_version
from streamrec.bench.serve import run_serve
from streamrec.bench.serve_catalogue import catalogue_registry
from streamrec.errors import ConfigError, ScorerError

CATALOGUE = 300
FIGURES = [
    f"{prefix}{name}" for prefix in ("", "echo_", "naive_") for name in ("p50_ms", "p99_ms", "max_rps_p99_under_10ms")
]
KEYS = {
    *FIGURES,
    "p50_ms_refreshed",
    "p99_ms_refreshed",
    "refreshed_max_rps_p99_under_10ms",
    "echo_max_rps_beside_refreshed",
    "refreshed_rps_over_echo",
    "prebuilt_lists",
    "p50_over_echo",
    "rps_over_echo",
    "rps_over_naive",
    "model_type",
    "model_version",
    "providers",
    "naive_runs_on",
    "sessions",
    "catalogue_items",
    "data",
    "inline_share",
    "refreshed_share",
    "requests",
    "load",
    "levels",
    "loadavg_1m",
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight GRU4Rec over a small synthetic catalogue: built in seconds, no training."""
    return catalogue_registry(CATALOGUE, root=tmp_path_factory.mktemp("serve"))


@pytest.mark.integration
def test_a_tiny_run_reports_every_figure(registry: Path) -> None:
    result = run_serve(registry, sessions=200, requests=200, levels=(2,), level_seconds=0.3)

    assert set(result) == KEYS
    json.dumps(result)  # one JSON line: everything serialisable
    for key in FIGURES + ["p50_ms_refreshed", "p99_ms_refreshed", "refreshed_max_rps_p99_under_10ms"]:
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] >= 0, key
    for prefix in ("", "echo_", "naive_"):
        assert 0 < result[f"{prefix}p50_ms"] <= result[f"{prefix}p99_ms"]
    for key in ("p50_over_echo", "rps_over_echo", "rps_over_naive", "refreshed_rps_over_echo"):
        assert result[key] is None or result[key] >= 0, key
    assert result["p50_over_echo"] > 0
    assert result["model_type"] == "gru4rec" and result["model_version"] == current_version(registry)
    assert "CPUExecutionProvider" in result["providers"]
    assert result["naive_runs_on"] == ["torch:cpu", "weights:model.onnx"]
    assert result["sessions"] == 200 and result["catalogue_items"] == CATALOGUE and result["requests"] == 200
    assert "vocabulary" in result["data"]["sessions"] and "synthetic catalogue" in result["data"]["model"]
    # every measured answer of ours came from the model inline, and then from the refreshed lists
    assert result["inline_share"] == 1.0 and result["refreshed_share"] == 1.0
    assert result["prebuilt_lists"] == 200  # refreshed through Score, every list came with its serialized answer
    assert set(result["levels"]) == {"ours", "echo", "naive", "ours_refreshed"}
    assert all(steps and steps[0][0] == 2 for steps in result["levels"].values())


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_fails_before_starting_anything(registry: Path) -> None:
    with pytest.raises(ScorerError, match="CUDAExecutionProvider"):
        run_serve(registry, providers="cuda")


def test_registry_and_catalogue_size_are_exclusive(registry: Path) -> None:
    with pytest.raises(ConfigError):
        run_serve(registry, catalogue_items=1000)


def test_naive_torch_model_scores_like_the_onnx_model(registry: Path) -> None:
    import torch

    from streamrec.bench.serve_torch import load_torch_model

    version_dir = registry / current_version(registry)
    model, weights = load_torch_model(version_dir)
    items = np.random.default_rng(0).integers(1, CATALOGUE + 1, size=(4, 7))
    lengths = np.array([7, 3, 1, 5])
    onnx_scores, onnx_items = ort.InferenceSession(str(version_dir / "model.onnx")).run(
        None, {"items": items, "lengths": lengths}
    )
    with torch.no_grad():
        scores = model(torch.from_numpy(items), torch.from_numpy(lengths))
    scores[:, 0] = float("-inf")
    top = torch.topk(scores, 20)
    assert weights == "model.onnx"
    np.testing.assert_array_equal(top.indices.numpy(), onnx_items[:, :20])
    np.testing.assert_allclose(top.values.numpy(), onnx_scores[:, :20], rtol=1e-4, atol=1e-5)
