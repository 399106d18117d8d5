"""Reduced-precision ONNX variants of an exported model (fp16, dynamic int8), their accuracy and latency.

Variants sit next to `model.onnx` in the same artifact version: `model.fp16.onnx` and `model.int8.onnx`,
listed in the manifest's `files` and summarised in `metrics["variants"]`. The scorer loads the fp32
`model.onnx` unless told otherwise; fp16 is meant for GPU execution providers (on the CPU provider most fp16
kernels are missing or slower), int8 for CPU scorers that want a smaller model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from streamrec.training.metrics import Prefixes, summarize
from streamrec.training.sequences import pad_right

VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
# The CPU provider has no fp16 ScatterElements with reduction=add (the repeat bias); keep it in fp32.
FP16_KEEP_FP32 = [*DEFAULT_OP_BLOCK_LIST, "ScatterElements"]


def make_fp16(source: Path, target: Path) -> Path:
    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True, op_block_list=FP16_KEEP_FP32)
    onnx.save(model, str(target))
    return target


def make_int8(source: Path, target: Path) -> Path:
    """Dynamic quantisation: int8 weights, activations quantised per batch at run time."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser advises shape-inference pre-processing, which these graphs skip
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return target


def cpu_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the CPU provider warns about fp16 fallbacks on every load
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_ranks(session: ort.InferenceSession, prefixes: Prefixes, batch_size: int = 256) -> np.ndarray:
    """1-based ranks of the targets within the model's top-K (K + 1 where the target is not among them)."""
    ranks = np.empty(len(prefixes), dtype=np.int64)
    order = np.argsort([len(p) for p in prefixes.items], kind="stable")
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        items, lengths = pad_right([prefixes.items[i] for i in idx])
        _, top = session.run(None, {"items": items, "lengths": lengths})
        found = top == prefixes.targets[idx, None]
        ranks[idx] = np.where(found.any(axis=1), found.argmax(axis=1) + 1, top.shape[1] + 1)
    return ranks


def latency_ms(session: ort.InferenceSession, batch: int, seq_len: int, n_items: int, repeats: int = 50) -> float:
    """Median wall time of one run on random sessions of `seq_len` items, after a warm-up."""
    rng = np.random.default_rng(0)
    feed = {"items": rng.integers(1, n_items, (batch, seq_len)), "lengths": np.full(batch, seq_len, dtype=np.int64)}
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


def build_variants(
    fp32: Path,
    n_items: int,
    reference: dict[str, float] | None,
    prefixes: Prefixes | None,
    seq_len: int = 10,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the fp16 and int8 files next to `fp32`; return {file name: path} and a summary per variant:
    HR@20/MRR@20 on `prefixes` and their change against `reference` (the torch model's), and CPU latency."""
    files = {VARIANT_FILES["fp32"]: fp32}
    files[VARIANT_FILES["fp16"]] = make_fp16(fp32, fp32.with_name(VARIANT_FILES["fp16"]))
    files[VARIANT_FILES["int8"]] = make_int8(fp32, fp32.with_name(VARIANT_FILES["int8"]))
    summary: dict[str, Any] = {}
    for variant, name in VARIANT_FILES.items():
        if progress:
            progress(f"measuring ONNX {variant}")
        session = cpu_session(files[name])
        entry: dict[str, Any] = {
            "file": name,
            "bytes": files[name].stat().st_size,
            "cpu_ms_batch1": latency_ms(session, 1, seq_len, n_items),
            "cpu_ms_batch64": latency_ms(session, 64, seq_len, n_items, repeats=20),
        }
        if prefixes is not None and len(prefixes):
            scores = summarize(onnx_ranks(session, prefixes))
            entry |= {"hr@20": scores["hr@20"], "mrr@20": scores["mrr@20"]}
            if reference:
                entry["hr@20_change"] = round(scores["hr@20"] - reference["hr@20"], 2)
                entry["mrr@20_change"] = round(scores["mrr@20"] - reference["mrr@20"], 2)
        summary[variant] = entry
    summary["latency_note"] = f"ONNX Runtime CPU provider, 1 intra-op thread, sessions of {seq_len} items, median"
    return files, summary
