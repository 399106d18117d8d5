"""Benchmark: a maintained peer (RecBole's GRU4Rec, SASRec, NARM, SR-GNN) beside streamrec's models, same split.

    nice .venv/bin/python -m streamrec.bench.peer_recbole [--dataset yoochoose-100k] [--models GRU4Rec SASRec ...]
                                                       [--ours v-sknn gru4rec sasrec ...] [--epochs 30]

The peer is not a dependency of the package: on first use it gets an environment of its own under
.streamrec/peers/recbole (RecBole and the few libraries it imports, from PyPI; torch, numpy and pandas are
shared with this environment through a .pth file rather than installed twice). The dataset's protocol split
(training/protocol.py) is written as RecBole atomic files, one row per prefix, so both sides rank exactly the
same test prefixes over the same items; each side chooses its epochs on the same validation sessions and
refits on all training sessions (bench/recbole_runner.py). RecBole runs with its own default settings per model
and full cross-entropy, capped at --epochs. One JSON line: both sides' HR@20, MRR@20 and NDCG@20 in %, the ratio
of ours to the peer's for each family both have, and the data files used.
When ../shared/data is absent (or the peer cannot be installed), one line says so ("skipped"), exit status 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from streamrec.bench.common import emit
from streamrec.errors import DataError
from streamrec.training.datasets import default_data_dir, load_dataset
from streamrec.training.evaluate import evaluate_dataset
from streamrec.training.metrics import Prefixes, all_prefixes
from streamrec.training.protocol import Split, make_split

ROOT = Path(__file__).resolve().parents[1]
PEER_ENV = ROOT / ".streamrec" / "peers" / "recbole"
RUNNER = Path(__file__).with_name("recbole_runner.py")
RECBOLE = "recbole==1.2.1"
# what RecBole 1.2.1 imports on the paths the runner takes; ray (hyper-parameter search) and plotly are left out.
# RecBole uses names NumPy 2 removed (np.float_, np.unicode_), so the peer gets NumPy 1 in front of the shared 2
PEER_LIBRARIES = (
    "numpy<2",
    "scipy",
    "scikit-learn",
    "colorlog==4.7.2",
    "colorama==0.4.4",
    "thop",
    "tabulate",
    "texttable",
    "psutil",
    "tensorboard",
)
MAX_LIST = 50  # RecBole's MAX_ITEM_LIST_LENGTH and streamrec's max_seq_len
# a peer family -> streamrec's model of the same family
SAME_FAMILY = {"GRU4Rec": "gru4rec", "SASRec": "sasrec"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_peer_env(path: Path = PEER_ENV) -> Path:
    """The peer's interpreter, its environment made on first use; RuntimeError with pip's words when it cannot."""
    python = path / "bin" / "python"
    if (path / ".ready").is_file():
        return python
    _log(f"installing {RECBOLE} into {path} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "streamrec_shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for args in (["--no-deps", RECBOLE], list(PEER_LIBRARIES)):
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    (path / ".ready").write_text(RECBOLE + "\n")
    return python


def _write_inter(path: Path, prefixes: Prefixes, part: str) -> None:
    """One row per prefix; every row is its own session so that no evaluation groups rows together."""
    with path.open("w") as out:
        out.write("session_id:token\titem_id_list:token_seq\titem_id:token\n")
        for row, (items, target) in enumerate(zip(prefixes.items, prefixes.targets, strict=True)):
            history = " ".join(str(int(i)) for i in items[-MAX_LIST:])
            out.write(f"{part}{row}\t{history}\t{int(target)}\n")


def write_split(split: Split, workdir: Path) -> dict[str, int]:
    """The split's four parts as RecBole atomic files under workdir/split; their prefix counts."""
    folder = workdir / "split"
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"fit": split.fit, "valid": split.valid, "test": split.test, "train": split.train}
    counts = {}
    for part, sessions in parts.items():
        prefixes = all_prefixes(sessions)
        _write_inter(folder / f"split.{part}.inter", prefixes, part)
        counts[part] = len(prefixes)
    return counts


def run_peer(python: Path, workdir: Path, models: list[str], epochs: int, patience: int) -> dict[str, Any]:
    command = [str(python), str(RUNNER), str(workdir), "--models", *models, "--epochs", str(epochs)]
    command += ["--patience", str(patience)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # RecBole writes its tensorboard logs under the working directory: keep them in the scratch one
    results: dict[str, Any] = {}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir
    ) as run:
        assert run.stdout is not None
        for line in run.stdout:  # a model's figures as it finishes, so a long run shows progress
            parsed = json.loads(line)
            if "model" in parsed:
                results[parsed.pop("model")] = parsed
                _log(f"RecBole {line.strip()}")
        stderr = run.stderr.read() if run.stderr else ""
    if run.returncode != 0:
        raise RuntimeError(f"the RecBole runner failed: {stderr.strip()[-1000:]}")
    return results


def _figures(entry: dict[str, Any]) -> dict[str, Any]:
    keys = ("hr@20", "mrr@20", "ndcg@20", "epochs", "train_seconds", "error")
    return {k: entry[k] for k in keys if k in entry}


def bench(
    dataset_name: str, data_dir: Path, peer_models: list[str], ours: list[str], epochs: int, patience: int
) -> dict[str, Any]:
    dataset = load_dataset(dataset_name, data_dir)
    split = make_split(dataset.events, dataset.protocol)
    python = ensure_peer_env()
    with tempfile.TemporaryDirectory(prefix="streamrec-peer-") as tmp:
        prefixes = write_split(split, Path(tmp))
        start = time.perf_counter()
        peer = run_peer(python, Path(tmp), peer_models, epochs, patience)
        peer_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = evaluate_dataset(dataset, ours, log=_log)
    ours_seconds = time.perf_counter() - start
    ratios = {
        theirs: round(report["models"][mine]["mrr@20"] / peer[theirs]["mrr@20"], 3)
        for theirs, mine in SAME_FAMILY.items()
        if mine in report["models"] and peer.get(theirs, {}).get("mrr@20")
    }
    best_peer = max((m for m in peer if "mrr@20" in peer[m]), key=lambda m: peer[m]["mrr@20"], default=None)
    served = report["served_by_validation"]
    line: dict[str, Any] = {
        "bench": "peer_recbole",
        "dataset": dataset_name,
        "data_files": [str(p) for p in dataset.files],
        "prefixes": prefixes,
        "peer": {"library": RECBOLE, "models": {m: _figures(e) for m, e in peer.items()}},
        "peer_seconds": round(peer_seconds, 1),
        "ours": {m: _figures(report["models"][m]) for m in report["models"]},
        "ours_seconds": round(ours_seconds, 1),
        "mrr_ratio_same_family": ratios,
        "served_by_validation": served,
    }
    if served and best_peer:
        line["served_over_best_peer_mrr"] = round(report["models"][served]["mrr@20"] / peer[best_peer]["mrr@20"], 3)
        line["best_peer"] = best_peer
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="yoochoose-100k")
    parser.add_argument("--models", nargs="+", default=["GRU4Rec", "SASRec", "NARM", "SRGNN"])
    parser.add_argument("--ours", nargs="+", default=["v-sknn", "gru4rec", "sasrec", "v-sknn+sasrec"])
    parser.add_argument("--epochs", type=int, default=30, help="the most epochs a peer model runs")
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better validation MRR@20")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir(ROOT)
    if data_dir is None or not data_dir.is_dir():
        reason = f"no real data: {args.data_dir or ROOT / '../shared/data'} does not exist (pass --data-dir)"
        emit({"bench": "peer_recbole", "skipped": reason}, as_json=True)
        return 0
    try:
        line = bench(args.dataset, data_dir, args.models, args.ours, args.epochs, args.patience)
    except (DataError, RuntimeError, subprocess.CalledProcessError) as exc:
        emit({"bench": "peer_recbole", "dataset": args.dataset, "skipped": str(exc)}, as_json=True)
        return 0
    emit(line, as_json=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
