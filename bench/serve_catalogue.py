"""A registry whose model scores a synthetic catalogue of any size, for latency runs at sizes no data set has.

The model is a GRU4Rec with random weights, exported and published like a trained one (training/export.py):
what a forward pass and its top-k cost depends on the catalogue's size and the model's shape, not on what the
weights learnt. Built once per size under the benchmark directory, then reused.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamrec.artifact import list_versions
from streamrec.bench.common import BENCH_DIR

EMBEDDING_DIM = 64  # the benchmark GRU4Rec's sizes (training.train.TrainConfig defaults)
HIDDEN_SIZE = 64
MAX_SEQ_LEN = 50
POPULAR = 100  # items of the cold-start list


def item_id(index: int) -> str:
    return f"c{index:07d}"


def catalogue_registry(n_items: int, root: Path | None = None) -> Path:
    """A registry holding one random-weight GRU4Rec over `n_items` items (`c0000001` ...); built on first use."""
    registry = (root or BENCH_DIR) / f"catalogue-{n_items}"
    if list_versions(registry):
        return registry
    import torch

    from streamrec.training.export import publish_model
    from streamrec.training.gru4rec import GRU4Rec, GRU4RecArgs

    print(f"building a random-weight GRU4Rec over {n_items} items (once) ...", file=sys.stderr)
    torch.manual_seed(0)
    args = GRU4RecArgs(n_items=n_items + 1, embedding_dim=EMBEDDING_DIM, hidden_size=HIDDEN_SIZE, dropout=0.0)
    vocabulary = ["", *(item_id(i) for i in range(1, n_items + 1))]
    publish_model(
        registry,
        GRU4Rec(args).eval(),
        model_type="gru4rec",
        model_args=args.to_dict(),
        vocabulary=vocabulary,
        max_seq_len=MAX_SEQ_LEN,
        popular=vocabulary[1 : POPULAR + 1],
        data={"source": f"synthetic catalogue of {n_items} items, random weights (bench.serve_catalogue)"},
        metrics={},
    )
    return registry
