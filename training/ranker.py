"""Train the second-stage ranker (an MLP over serving/ranking.py's features) and publish it with its session model.

    python -m streamrec.training.ranker --version REGISTRY/VERSION --dataset yoochoose-100k [--out REGISTRY]
    python -m streamrec.training.ranker --version REGISTRY/VERSION --synthetic [--sessions N]

Training data are the protocol's *validation* prefixes (training/protocol.py), each with the session model's
top-K as candidates and the true next item as label; the loss is a softmax over each prefix's candidates
(listwise). By default the candidates come from a copy of the session model refitted on the fitting sessions
only, with the checkpoint's own settings: the published model was trained on the validation sessions too, and
its candidates there would be more accurate than on new sessions, teaching the ranker to over-trust retrieval.
The epoch count is chosen on the last `holdout` share of validation sessions, then the ranker is refitted on
all of them. The test prefixes (candidates from the published model, as served) are only measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from streamrec import artifact
from streamrec.errors import ArtifactError, DataError
from streamrec.features.ranker_inputs import FEATURES, ITEM_META, RANKER_INFO, RANKER_MODEL, ItemMeta
from streamrec.training.datasets import Dataset
from streamrec.training.metrics import summarize
from streamrec.training.ranker_features import (
    RankerData,
    Retriever,
    StreamAggregates,
    TimedSplit,
    all_timed_prefixes,
    build_data,
    item_meta_maps,
    timed_sessions,
)
from streamrec.training.ranker_model import MISS, Log, RankerConfig, export_ranker, fit_selected, onnx_scores, ranks

RANKER_FORMAT = 1


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def validation_retriever(
    version_dir: Path, split: TimedSplit, mode: str, tmp: Path, log: Log, fit_model: str = ""
) -> tuple[Retriever, str]:
    """The retriever for the validation prefixes: the published model, or a copy refitted on `split.fit` (kept
    in `fit_model` when given, and reused from there: refitting is most of a run's time)."""
    manifest = artifact.load_manifest(version_dir)
    vocab = artifact.load_vocabulary(version_dir)
    checkpoint = version_dir / "model.pt"
    can_refit = checkpoint.is_file() and "model.pt" in manifest.files
    if mode == "published" or (mode == "auto" and not can_refit):
        return Retriever(version_dir / artifact.MODEL, vocab, manifest.max_seq_len), "published"
    if not can_refit:
        raise ArtifactError(f"{version_dir} has no model.pt checkpoint to refit candidates from")
    from streamrec.training.export import export_onnx
    from streamrec.training.models import build_model, load_checkpoint
    from streamrec.training.sequences import Vocabulary
    from streamrec.training.train import TrainConfig, fit

    if fit_model and Path(fit_model).is_file():
        log(f"candidates from the refitted model saved in {fit_model}")
        return Retriever(Path(fit_model), vocab, manifest.max_seq_len), "refit"
    _, meta = load_checkpoint(checkpoint)
    epochs = int(manifest.metrics.get("epochs") or meta.get("metrics", {}).get("epochs") or 0)
    if "train_config" not in meta or not epochs:
        raise ArtifactError(f"{checkpoint} does not say how it was trained (train_config, epochs)")
    cfg = replace(TrainConfig(**meta["train_config"]), epochs=epochs, progress=False)
    log(f"refitting {meta['model_type']} on the {len(split.fit)} fitting sessions for {epochs} epochs")
    model = build_model(meta["model_type"], meta["model_args"])
    fit(model, Vocabulary(vocab).encode(split.fit), cfg)
    path = export_onnx(model, len(vocab), Path(fit_model) if fit_model else tmp / "fit_model.onnx", manifest.candidates)
    return Retriever(path, vocab, manifest.max_seq_len), "refit"


def evaluate(scores: np.ndarray, data: RankerData, dropped: int) -> dict[str, float]:
    """HR/MRR/NDCG@20 (in %) over all prefixes; a target outside the candidates, or a prefix without any, is a miss."""
    return summarize(np.concatenate([ranks(scores, data.target), np.full(dropped, MISS)]))


def paired_gain(base: np.ndarray, new: np.ndarray, data: RankerData, dropped: int, k: int = 20) -> dict[str, Any]:
    """Ranked minus retrieval HR@k and MRR@k in points, each with a 95% half-width from a standard error
    clustered by session (a session's prefixes are not independent of each other)."""
    out: dict[str, Any] = {}
    n = len(data.target) + dropped  # a prefix without candidates is a miss both ways: difference 0
    for name, value in (("hr", lambda r: (r <= k) * 1.0), ("mrr", lambda r: np.where(r <= k, 1.0 / r, 0.0))):
        diff = value(ranks(new, data.target)) - value(ranks(base, data.target))
        mean = diff.sum() / n
        per_session = np.bincount(data.session_index, weights=diff - mean)
        se = float(np.sqrt(np.sum(per_session**2))) / n
        out[f"{name}@{k}"] = {"gain": round(100 * mean, 2), "ci95": round(100 * 1.96 * se, 2)}
    return out


def train_ranker(
    version_dir: Path,
    dataset: Dataset,
    registry: Path | None = None,
    cfg: RankerConfig | None = None,
    log: Log = _log,
) -> Path:
    """Train a ranker for the session model in `version_dir` on `dataset`, publish a new version (the session
    model's files plus ranker.onnx, ranker.json and item_meta.json) to `registry` (default: the same one)."""
    start = time.perf_counter()
    cfg = cfg or RankerConfig()
    manifest = artifact.load_manifest(version_dir)
    vocab = artifact.load_vocabulary(version_dir)
    split = timed_sessions(dataset.events, dataset.protocol)
    aggregates = StreamAggregates(dataset.events)
    meta_maps = item_meta_maps(dataset.events, vocab[1:])
    meta = ItemMeta.from_maps(meta_maps["categories"], meta_maps["prices"])
    valid_prefixes, test_prefixes = all_timed_prefixes(split.valid), all_timed_prefixes(split.test)
    log(
        f"{dataset.name}: {len(valid_prefixes)} validation / {len(test_prefixes)} test prefixes; "
        f"{len(meta_maps['categories'])} items with categories, {len(meta_maps['prices'])} with prices"
    )
    with tempfile.TemporaryDirectory(prefix="streamrec-ranker-") as tmp_name:
        tmp = Path(tmp_name)
        retriever, source = validation_retriever(version_dir, split, cfg.candidates, tmp, log, cfg.fit_model)
        train = build_data(valid_prefixes, retriever, aggregates, meta, log)
        published = Retriever(version_dir / artifact.MODEL, vocab, manifest.max_seq_len)
        test = build_data(test_prefixes, published, aggregates, meta, log)
        model, selection = fit_selected(train, cfg, log)
        ranker_path = export_ranker(model, tmp / RANKER_MODEL)
        ranked = onnx_scores(ranker_path, test)  # the exported graph, as the scorer will run it
        dropped = len(test_prefixes) - len(test.target)
        metrics: dict[str, Any] = {
            "split": "test",
            "test_prefixes": len(test_prefixes),
            "retrieval": evaluate(test.retrieval_scores, test, dropped),
            "ranked": evaluate(ranked, test, dropped),
            "gain": paired_gain(test.retrieval_scores, ranked, test, dropped),
            "target_in_candidates": round(100 * float(np.mean(test.target >= 0)), 2),
            "candidates": source,
            "train_prefixes": int(np.sum(train.target >= 0)),
            **selection,
            "seconds": round(time.perf_counter() - start, 1),
        }
        metrics["ratio"] = {
            k: round(metrics["ranked"][k] / metrics["retrieval"][k], 3)
            for k in ("hr@20", "mrr@20")
            if metrics["retrieval"][k]
        }
        log(f"test: retrieval {metrics['retrieval']} -> ranked {metrics['ranked']}")
        return publish_ranker(
            version_dir,
            registry or version_dir.parent,
            ranker_path,
            meta_maps,
            metrics,
            {"dataset": dataset.name, "config": asdict(cfg)},
        )


def publish_ranker(
    version_dir: Path,
    registry: Path,
    ranker_path: Path,
    meta_maps: dict[str, Any],
    metrics: dict[str, Any],
    about: dict[str, Any],
) -> Path:
    """A new version: every file of the source version plus the ranker's; its manifest is the source's with a
    new name and `metrics["ranker"]`."""
    source = artifact.load_manifest(version_dir)
    version = artifact.new_version_name()
    info = {
        "format": RANKER_FORMAT,
        "version": version,
        "features": list(FEATURES),
        "retrieval_version": source.version,
        "metrics": metrics,
        **about,
    }
    with tempfile.TemporaryDirectory(prefix="streamrec-ranker-publish-") as tmp_name:
        info_path, meta_path = Path(tmp_name) / RANKER_INFO, Path(tmp_name) / ITEM_META
        info_path.write_text(json.dumps(info, indent=2))
        meta_path.write_text(json.dumps(meta_maps))
        ours = (RANKER_MODEL, RANKER_INFO, ITEM_META)  # a source that has a ranker already: replaced
        files = {name: version_dir / name for name in source.files if name not in ours}
        files |= {RANKER_MODEL: ranker_path, RANKER_INFO: info_path, ITEM_META: meta_path}
        manifest = replace(
            source, version=version, metrics={**source.metrics, "ranker": metrics}, files={}, created_at=""
        )
        return artifact.publish(registry, files, manifest)


def synthetic_dataset(n_sessions: int = 4000, n_items: int = 500, span_days: float = 0.2) -> Dataset:
    """The seeded synthetic clickstream (categories and prices known) with a protocol fitted to its one day."""
    from streamrec.training.canonical import LoadReport
    from streamrec.training.protocol import ProtocolConfig
    from streamrec.training.sequences import events_frame
    from streamrec.training.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(n_items=n_items, n_sessions=n_sessions)
    frame = events_frame(generate(config))
    name = f"synthetic(n_items={n_items}, n_sessions={n_sessions}, seed={config.seed})"
    return Dataset(name, frame, LoadReport(name, len(frame)), ProtocolConfig(span_days, span_days), ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamrec.training.ranker", description=__doc__.split("\n")[0])
    parser.add_argument("--version", type=Path, required=True, help="the session model's version directory")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--dataset", help="yoochoose-100k, taobao, diginetica-sample or a data file (as `train`)")
    data.add_argument("--synthetic", action="store_true", help="the seeded synthetic clickstream")
    parser.add_argument("--sessions", type=int, default=4000, help="synthetic sessions (default 4000)")
    parser.add_argument("--items", type=int, default=500, help="synthetic items (default 500)")
    parser.add_argument("--data-dir", type=Path, default=None, help="named datasets dir (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=None, help="registry to publish to (default: the version's)")
    parser.add_argument("--candidates", choices=("auto", "refit", "published"), default="auto")
    parser.add_argument("--fit-model", default="", help="keep/reuse the refitted candidate model at this path")
    parser.add_argument("--ablate", nargs="*", default=[], help="feature groups to ignore: stream, session, ...")
    parser.add_argument("--epochs", type=int, default=RankerConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = RankerConfig(
        candidates=args.candidates,
        epochs=args.epochs,
        seed=args.seed,
        fit_model=args.fit_model,
        ablate=tuple(args.ablate),
    )
    try:
        if args.synthetic:
            dataset = synthetic_dataset(args.sessions, args.items)
        else:
            from streamrec.training.datasets import load_dataset

            dataset = load_dataset(args.dataset, args.data_dir)
        print(train_ranker(args.version, dataset, args.out, cfg))
    except (DataError, ArtifactError) as exc:
        _log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
