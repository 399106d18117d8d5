"""ONNX export of a session model as the scorer's top-k graph, and publication as a registry version.

The exported graph has inputs `items` int64 [B, T] (right-padded with 0) and `lengths` int64 [B], and outputs
`top_scores` float32 [B, K] and `top_items` int64 [B, K] (vocabulary indices; index 0 is masked so it never
appears). Batch and sequence length are dynamic; K is fixed at export.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamrec import artifact
from streamrec.artifact import Manifest
from streamrec.training.metrics import Prefixes

MAX_CANDIDATES = 200
ONNX_OPSET = 18


class TopK(nn.Module):
    """Wraps a model whose forward(items, lengths) gives scores over all items into the top-k graph."""

    def __init__(self, model: nn.Module, n_items: int, k: int) -> None:
        super().__init__()
        self.model = model
        self.k = k
        # a buffer, not a constant folded from arange, so the exported graph is the same for every batch size
        self.register_buffer("padding", torch.arange(n_items) == 0)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # ranked in the model's own precision (session kNN's float64 keeps its popularity tie-break), then float32
        scores = self.model(items, lengths).masked_fill(self.padding, float("-inf"))
        top_scores, top_items = torch.topk(scores, self.k, dim=1)
        return top_scores.float(), top_items


def candidates_for(n_items: int) -> int:
    return min(MAX_CANDIDATES, n_items - 1)


def export_onnx(model: nn.Module, n_items: int, path: Path, k: int | None = None) -> Path:
    """Write `model` as a single-file ONNX top-k graph at `path` (weights inline; our models are small)."""
    wrapper = TopK(model, n_items, k or candidates_for(n_items)).eval()
    example = (torch.randint(1, n_items, (2, 3)), torch.tensor([3, 2]))
    # The TorchScript exporter maps nn.GRU onto ONNX's GRU op with a dynamic sequence axis. The dynamo
    # exporter (torch 2.13) specialises the sequence length of nn.GRU to the example's on a second export
    # in the same process, so it is not reliable here; nothing in our models needs it.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation notices about the exporter itself
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=["items", "lengths"],
            output_names=["top_scores", "top_items"],
            dynamic_axes={
                "items": {0: "batch", 1: "seq"},
                "lengths": {0: "batch"},
                "top_scores": {0: "batch"},
                "top_items": {0: "batch"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    _drop_intermediate_shapes(path)
    return path


def _drop_intermediate_shapes(path: Path) -> None:
    """Remove the exporter's shapes of intermediate values, subgraphs' included: for the branches it wraps around a
    scatter it declares ranks that do not hold, which ONNX Runtime then warns about on every run; the runtime
    infers them itself (the graph's own inputs and outputs keep theirs)."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                del attribute.g.value_info[:]
                for output in attribute.g.output:
                    output.type.tensor_type.ClearField("shape")
    onnx.save(model, str(path))


def publish_model(
    registry: Path,
    model: nn.Module,
    *,
    model_type: str,
    model_args: dict[str, Any],
    vocabulary: list[str],
    max_seq_len: int,
    popular: list[str],
    data: dict[str, Any],
    metrics: dict[str, Any],
    extra_files: dict[str, Path] | None = None,
    variants: bool = False,
    eval_prefixes: Prefixes | None = None,
    make_current: bool = True,
) -> Path:
    """Export `model` and publish it with its vocabulary and manifest; returns the new version directory.

    With `variants`, fp16 and int8 files are added and `metrics["variants"]` summarises each variant's
    HR@20/MRR@20 on `eval_prefixes` (change against `metrics`, the torch model's) and its CPU latency.
    """
    n_items = len(vocabulary)
    k = candidates_for(n_items)
    with tempfile.TemporaryDirectory(prefix="streamrec-export-") as tmp:
        onnx_path = export_onnx(model, n_items, Path(tmp) / artifact.MODEL, k)
        vocab_path = Path(tmp) / artifact.VOCABULARY
        vocab_path.write_text(json.dumps(vocabulary))
        manifest = Manifest(
            version=artifact.new_version_name(),
            model_type=model_type,
            model_args=model_args,
            n_items=n_items,
            max_seq_len=max_seq_len,
            candidates=k,
            popular_items=popular,
            data=data,
            metrics=metrics,
        )
        files = {artifact.MODEL: onnx_path, artifact.VOCABULARY: vocab_path, **(extra_files or {})}
        if variants:
            from streamrec.training.variants import build_variants  # onnxruntime is needed only here

            variant_files, summary = build_variants(onnx_path, n_items, metrics, eval_prefixes)
            files |= variant_files
            manifest = replace(manifest, metrics={**metrics, "variants": summary})
        return artifact.publish(registry, files, manifest, make_current=make_current)
