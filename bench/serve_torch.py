"""The torch session model of a published version, for the naive scorer: from its checkpoint, else rebuilt.

A version trained by `streamrec train` carries `model.pt` (weights plus model arguments). One published by
`train_session_model` (the synthetic benchmark model) carries only `model.onnx`; for GRU4Rec the torch module
is rebuilt from the manifest's `model_args` and its weights are read back out of the ONNX graph, so the naive
scorer computes exactly what ours does. Any other model without a checkpoint keeps its random initial weights:
the cost of a forward pass, which is all the benchmark measures, does not depend on the weights' values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from streamrec.artifact import MODEL, load_manifest
from streamrec.training.models import build_model, load_checkpoint

CHECKPOINT = "model.pt"  # the name training.pipeline gives it inside a version
WEIGHTS_CHECKPOINT, WEIGHTS_ONNX, WEIGHTS_RANDOM = "checkpoint", "model.onnx", "random"


def load_torch_model(version_dir: Path) -> tuple[nn.Module, str]:
    """The version's model in eval mode on the CPU, and where its weights came from."""
    manifest = load_manifest(version_dir)
    if CHECKPOINT in manifest.files:
        model, _ = load_checkpoint(version_dir / CHECKPOINT)
        return model, WEIGHTS_CHECKPOINT
    torch.manual_seed(0)
    model = build_model(manifest.model_type, manifest.model_args)
    if manifest.model_type == "gru4rec":
        load_gru4rec_from_onnx(model, version_dir / MODEL)
        return model.eval(), WEIGHTS_ONNX
    return model.eval(), WEIGHTS_RANDOM


def load_gru4rec_from_onnx(model: nn.Module, onnx_path: Path) -> None:
    """Copy a GRU4Rec's weights out of its exported graph (torch.onnx's TorchScript exporter).

    Parameters the exporter kept by name (`model.embedding.weight`, `model.bias`, ...) are copied as they are;
    each layer's GRU weights come from the inputs W, R, B of the graph's GRU nodes, in layer order. ONNX orders
    a GRU's gates update, reset, new (z, r, h); torch orders them reset, update, new (r, z, n).
    """
    graph = onnx.load(str(onnx_path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    state = model.state_dict()
    for name in state:
        exported = weights.get(f"model.{name}")
        if exported is not None and exported.shape == tuple(state[name].shape):
            state[name] = torch.from_numpy(exported.copy())
    gru_nodes = [node for node in graph.node if node.op_type == "GRU"]
    for layer, node in enumerate(gru_nodes):
        w, r, b = (weights[node.input[i]][0] for i in (1, 2, 3))  # input 0 is X; [1, 3H, *] for the one direction
        hidden = w.shape[0] // 3
        state[f"gru.weight_ih_l{layer}"] = _torch_gate_order(w, hidden)
        state[f"gru.weight_hh_l{layer}"] = _torch_gate_order(r, hidden)
        state[f"gru.bias_ih_l{layer}"] = _torch_gate_order(b[: 3 * hidden], hidden)
        state[f"gru.bias_hh_l{layer}"] = _torch_gate_order(b[3 * hidden :], hidden)
    model.load_state_dict(state)


def _torch_gate_order(array: np.ndarray, hidden: int) -> torch.Tensor:
    z, r, h = array[:hidden], array[hidden : 2 * hidden], array[2 * hidden :]
    return torch.from_numpy(np.concatenate([r, z, h]).copy())
