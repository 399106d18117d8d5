"""Benchmark: the product-search text encoder on the CPU, fp32 against int8, as one JSON line.

    nice .venv/bin/python -m streamrec.bench.encoder [--encoder-dir DIR] [--queries 500] [--titles 2048]
                                                     [--threads 1] [--data-dir DIR]

For each variant: one-query encode latency p50/p99 in ms (tokenisation included, one call per query, after a
warm-up), titles encoded per second (one `encode` call over all titles: length-sorted batches of 64), and the
file's size; then the cosine between fp32 and int8 embeddings (mean and min, queries and titles apart) and the
int8/fp32 latency ratio. Texts are Home Depot search terms and product titles from
../shared/data/homedepot_search_relevance_dev.csv.gz when it exists, else seeded synthetic strings ("texts" says
which). The encoder is exported first when DIR holds none (streamrec.training.text_encoder.ensure_encoder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.bench.common import emit
from streamrec.search.encoder import (
    DEFAULT_BATCH_SIZE,
    VARIANT_FILES,
    EncoderManifest,
    TextEncoder,
    default_encoder_dir,
)
from streamrec.training.datasets import default_data_dir

HOMEDEPOT = "homedepot_search_relevance_dev.csv.gz"
WARMUP = 20
WORDS = (  # synthetic texts draw from these when the Home Depot file is absent
    "cordless drill driver kit 20v max lithium ion battery white satin interior paint gallon toilet seat elongated "
    "pvc pipe 1/2 in. x 10 ft. led light bulb 60w ceiling fan stainless steel sink faucet chrome door hinge brass "
    "garden hose 50 ft. lawn mower gas self propelled wood screws #8 deck board pressure treated tile grout gray"
)


def _texts(data_dir: Path | None, queries: int, titles: int, seed: int = 0) -> tuple[str, list[str], list[str]]:
    """(source, queries, titles): Home Depot's when its file exists, else synthetic."""
    rng = np.random.default_rng(seed)
    folder = data_dir or default_data_dir()
    path = folder / HOMEDEPOT if folder else None
    if path is not None and path.is_file():
        import pandas as pd

        frame = pd.read_csv(path, encoding="latin-1", usecols=["product_title", "search_term"])
        terms = frame["search_term"].astype(str).unique()
        names = frame["product_title"].astype(str).unique()
        picked_terms = rng.choice(terms, size=min(queries, len(terms)), replace=False)
        picked_names = rng.choice(names, size=min(titles, len(names)), replace=False)
        return f"homedepot ({path.name})", [str(t) for t in picked_terms], [str(t) for t in picked_names]

    words = WORDS.split()

    def phrase(low: int, high: int) -> str:
        return " ".join(rng.choice(words, size=int(rng.integers(low, high))))

    return "synthetic", [phrase(1, 5) for _ in range(queries)], [phrase(5, 25) for _ in range(titles)]


def _latency_ms(encoder: TextEncoder, queries: list[str]) -> tuple[np.ndarray, list[float]]:
    for query in queries[:WARMUP]:
        encoder.encode([query])
    rows, times = [], []
    for query in queries:
        start = time.perf_counter()
        rows.append(encoder.encode([query]))
        times.append(1000 * (time.perf_counter() - start))
    return np.concatenate(rows), times


def bench_variant(
    encoder_dir: Path, variant: str, queries: list[str], titles: list[str], threads: int
) -> dict[str, Any]:
    encoder = TextEncoder.load(encoder_dir, variant, threads=threads)  # type: ignore[arg-type]
    query_vectors, times = _latency_ms(encoder, queries)
    start = time.perf_counter()
    title_vectors = encoder.encode(titles)
    seconds = time.perf_counter() - start
    return {
        "query_vectors": query_vectors,
        "title_vectors": title_vectors,
        "figures": {
            "query_p50_ms": round(float(np.percentile(times, 50)), 3),
            "query_p99_ms": round(float(np.percentile(times, 99)), 3),
            "titles_per_s": round(len(titles) / seconds, 1),
            "file_mb": round((encoder_dir / VARIANT_FILES[variant]).stat().st_size / 1e6, 1),
        },
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(axis=1)  # both are unit vectors
    return {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5)}


def bench(encoder_dir: Path, data_dir: Path | None, queries: int, titles: int, threads: int) -> dict[str, Any]:
    source, query_texts, title_texts = _texts(data_dir, queries, titles)
    results = {v: bench_variant(encoder_dir, v, query_texts, title_texts, threads) for v in VARIANT_FILES}
    fp32, int8 = results["fp32"], results["int8"]
    manifest = EncoderManifest.read(encoder_dir)
    return {
        "bench": "encoder",
        "model": manifest.model,
        "max_length": manifest.max_length,
        "texts": source,
        "queries": len(query_texts),
        "titles": len(title_texts),
        "batch_size": DEFAULT_BATCH_SIZE,
        "threads": threads,
        **{variant: r["figures"] for variant, r in results.items()},
        "int8_vs_fp32_cosine": {
            "queries": _cosine(fp32["query_vectors"], int8["query_vectors"]),
            "titles": _cosine(fp32["title_vectors"], int8["title_vectors"]),
        },
        "int8_over_fp32_latency_p50": round(int8["figures"]["query_p50_ms"] / fp32["figures"]["query_p50_ms"], 3),
        "int8_over_fp32_latency_p99": round(int8["figures"]["query_p99_ms"] / fp32["figures"]["query_p99_ms"], 3),
        "export_parity": manifest.parity,
        "note": "ONNX Runtime CPU provider; latency is one encode() call per query, tokenisation included",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder-dir", type=Path, default=None, help="default: the encoder cache directory")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the Home Depot file lies")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--titles", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    from streamrec.training.text_encoder import ensure_encoder  # torch only when the encoder must be exported

    encoder_dir = ensure_encoder(args.encoder_dir or default_encoder_dir())
    emit(bench(encoder_dir, args.data_dir, args.queries, args.titles, args.threads), as_json=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
