"""What every benchmark needs: a trained model (cached), the local services, and one JSON line of output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from streamrec.artifact import list_versions

BENCH_DIR = Path(os.environ.get("STREAMREC_BENCH_DIR", ".streamrec/bench"))


def bench_registry() -> Path:
    """A registry with a GRU4Rec model trained on the synthetic clickstream; trained once, then reused."""
    registry = BENCH_DIR / "registry"
    if not list_versions(registry):
        from streamrec.training.synthetic import SyntheticConfig, generate
        from streamrec.training.train import train_session_model

        print("training the benchmark model (once) ...", file=sys.stderr)
        train_session_model(generate(SyntheticConfig()), registry)
    return registry


def emit(figures: dict[str, Any], as_json: bool) -> None:
    """Print the result: one JSON line (with the machine it ran on), or aligned text."""
    figures = {**figures, "machine": f"{platform.machine()} {os.cpu_count()} cpus", "at": time.strftime("%FT%TZ")}
    if as_json:
        print(json.dumps(figures), flush=True)
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
