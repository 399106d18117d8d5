"""`streamrec search evaluate`: product search quality on graded labels, every method on the same catalogue.

The catalogue is every product of the given files; what is learnt (the ranker) is fitted on `--train` only, on
grouped folds by search term when no `--test` is given, so a term is never both learnt from and scored. For each
scored term: MRR@10 and recall@100 over the whole catalogue, with the term's products rated >= 2.67 as the
relevant ones (unjudged products are unknown: never counted relevant); nDCG@10 of ordering the term's judged
products by the method's score (gain 2^relevance - 1); RMSE of predicted relevance where a method predicts one.
Methods: `bm25` (plain BM25, no stemming: the reference), `bm25-stemmed` (the lexical list the scorer uses:
English stems, misspellings one edit away), `dense` (the sentence encoder, fp32) and `dense-int8`, `hybrid`
(reciprocal-rank fusion of the lexical and dense lists) and `ranked` (the ranker over the fused candidates),
which is what the scorer serves.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from streamrec.errors import DataError
from streamrec.search.candidates import FEATURES, retrieve
from streamrec.search.catalogue import Catalogue, listing_text
from streamrec.search.lexical import LexicalIndex, Listing

RELEVANT = 2.67  # the rating from which a judged product counts as relevant
FOLDS = 5
SERVED = "ranked"
SERVED_VARIANT: Literal["fp32", "int8"] = (
    "int8"  # the encoder the scorer runs (docs/search.md: fp32 and int8 side by side)
)
SEARCH_MANIFEST = "search.json"
LABEL_COLUMNS = {"product_uid": "product_id", "product_title": "title", "search_term": "term", "relevance": "relevance"}


def load_labels(path: Path) -> pd.DataFrame:
    """A graded-labels file in the Home Depot layout (Latin-1 CSV: product_uid, product_title, search_term,
    relevance) as columns product_id, title, term, relevance."""
    try:
        frame = pd.read_csv(path, encoding="latin-1", dtype={"product_uid": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    missing = set(LABEL_COLUMNS) - set(frame.columns)
    if missing:
        raise DataError(
            f"{path} lacks the columns {sorted(missing)} (the Home Depot layout: {', '.join(LABEL_COLUMNS)})"
        )
    frame = frame.rename(columns=LABEL_COLUMNS)[list(LABEL_COLUMNS.values())]
    frame["term"] = frame["term"].astype(str).str.strip()
    frame["title"] = frame["title"].astype(str)
    return frame[frame["term"] != ""].reset_index(drop=True)


def catalogue_of(*frames: pd.DataFrame) -> list[Listing]:
    """Every product of the files, with the first title it appears under."""
    rows = pd.concat(frames).drop_duplicates("product_id")
    return [Listing(p, t) for p, t in zip(rows["product_id"], rows["title"], strict=True)]


def term_folds(terms: np.ndarray, n: int = FOLDS, seed: int = 0) -> list[np.ndarray]:
    """`terms` shuffled into `n` disjoint groups."""
    order = np.random.default_rng(seed).permutation(terms)
    return [order[i::n] for i in range(n)]


@dataclass
class TermResult:
    mrr: float
    recall: float | None  # None for a term with no relevant product
    ndcg: float
    squared_errors: list[float]


def _ranking_figures(ranked: list[str], judged: dict[str, float], scores: dict[str, float]) -> TermResult:
    relevant = {p for p, r in judged.items() if r >= RELEVANT}
    mrr = next((1.0 / rank for rank, p in enumerate(ranked[:10], start=1) if p in relevant), 0.0)
    recall = len(relevant & set(ranked[:100])) / len(relevant) if relevant else None
    order = sorted(judged, key=lambda p: -scores.get(p, -np.inf))
    gains = np.array([2.0 ** judged[p] - 1.0 for p in order[:10]])
    ideal = np.sort(np.array([2.0**r - 1.0 for r in judged.values()]))[::-1][:10]
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg = float((gains * discounts[: len(gains)]).sum() / (ideal * discounts[: len(ideal)]).sum())
    return TermResult(mrr, recall, ndcg, [])


def summarise(results: list[TermResult]) -> dict[str, Any]:
    with_relevant = [r for r in results if r.recall is not None]
    errors = [e for r in results for e in r.squared_errors]
    return {
        "mrr@10": round(100 * float(np.mean([r.mrr for r in with_relevant])), 2),
        "recall@100": round(100 * float(np.mean([r.recall for r in with_relevant])), 2),
        "ndcg@10": round(100 * float(np.mean([r.ndcg for r in results])), 2),
        "rmse": round(float(np.sqrt(np.mean(errors))), 4) if errors else None,
    }


Log = Callable[[str], None]


def evaluate_search(
    train: Path,
    test: Path | None = None,
    *,
    encoder_dir: Path | None = None,
    cache_dir: Path | None = None,
    log: Log = lambda _: None,
) -> dict[str, Any]:
    """The JSON object `streamrec search evaluate` prints."""
    from streamrec.search.encoder import TextEncoder, default_encoder_dir
    from streamrec.training.text_encoder import ensure_encoder

    start = time.perf_counter()
    train_frame = load_labels(train)
    test_frame = load_labels(test) if test else None
    listings = catalogue_of(train_frame, *([test_frame] if test_frame is not None else []))
    log(f"catalogue: {len(listings)} products")
    encoder_dir = ensure_encoder(encoder_dir or default_encoder_dir())
    encoders = {variant: TextEncoder.load(encoder_dir, variant) for variant in ("fp32", "int8")}
    catalogues = {v: _catalogue(listings, e, v, cache_dir, log) for v, e in encoders.items()}
    plain = LexicalIndex(stemmed=False, fuzzy=False)
    plain.upsert(listings)
    plain.refresh()

    scored = test_frame if test_frame is not None else train_frame
    judged = _judged(scored)
    terms = np.array(sorted(judged))
    if test_frame is not None:
        splits = [(terms, _judged(train_frame))]
    else:
        splits = []
        for fold in term_folds(terms):
            held_out = set(fold)
            splits.append((fold, {t: judged[t] for t in terms if t not in held_out}))
    served = catalogues[SERVED_VARIANT]
    results: dict[str, list[TermResult]] = {
        m: [] for m in ("bm25", "bm25-stemmed", "dense", "dense-int8", "hybrid", SERVED)
    }
    for number, (scored_terms, learn_from) in enumerate(splits, start=1):
        log(f"fold {number}/{len(splits)}: ranker on {len(learn_from)} terms, scoring {len(scored_terms)}")
        ranker = _fit(served, encoders[SERVED_VARIANT], learn_from)
        for term in scored_terms:
            _score_term(term, judged[term], plain, catalogues, encoders, ranker, results)
    return {
        "train_file": str(train),
        "test_file": str(test) if test else None,
        "catalogue_products": len(listings),
        "test_terms": len(terms),
        "test_terms_with_relevant": sum(1 for r in results["bm25"] if r.recall is not None),
        "protocol": "held-out file" if test else f"{len(splits)} folds grouped by search term",
        "relevant_from": RELEVANT,
        "methods": {m: summarise(r) | {"served": m == SERVED} for m, r in results.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }


def _judged(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """term -> product -> mean relevance (a product judged twice under one term: the mean of both)."""
    means = frame.groupby(["term", "product_id"])["relevance"].mean()
    out: dict[str, dict[str, float]] = {}
    for (term, product), rating in means.items():
        out.setdefault(str(term), {})[str(product)] = float(rating)
    return out


def _catalogue(listings: list[Listing], encoder: Any, variant: str, cache_dir: Path | None, log: Log) -> Catalogue:
    """The catalogue of `listings` searchable with `encoder`, their embeddings from the cache where it has them."""
    catalogue = Catalogue(encoder)
    catalogue.apply(listings, vectors=_title_vectors(encoder, variant, listings, cache_dir, log))
    return catalogue


def _title_vectors(encoder: Any, variant: str, listings: list[Listing], cache_dir: Path | None, log: Log) -> np.ndarray:
    """Every listing's embedding, from a cache file keyed by the encoder's files and the texts when there is one."""
    texts = [listing_text(listing) for listing in listings]
    fingerprint = variant + json.dumps(encoder.manifest.files, sort_keys=True)
    digest = hashlib.sha256(("\x1f".join(texts) + fingerprint).encode()).hexdigest()[:16]
    path = cache_dir / f"titles-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    log(f"encoded {len(texts)} titles ({variant}) in {time.perf_counter() - started:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


NEGATIVES_PER_TERM = 100  # retrieved but unjudged candidates per training term, for the ranker's `judged` head


def _fit(catalogue: Catalogue, encoder: Any, learn_from: dict[str, dict[str, float]], seed: int = 0) -> Any:
    """The ranker fitted on every judged product of `learn_from` and a sample of the other retrieved candidates."""
    from streamrec.training.search_ranker import fit_ranker

    rng = np.random.default_rng(seed)
    rows, labels, judged, groups = [], [], [], []
    terms = list(learn_from)
    query_vectors = encoder.encode(terms)
    for number, term in enumerate(terms):
        ratings = learn_from[term]
        candidates = retrieve(catalogue, term, query_vectors[number], extra=list(ratings))
        others = [i for i, p in enumerate(candidates.product_ids) if p not in ratings]
        sample = rng.permutation(others)[:NEGATIVES_PER_TERM].tolist() if others else []
        chosen = [i for i, p in enumerate(candidates.product_ids) if p in ratings] + sample
        for i in chosen:
            product = candidates.product_ids[i]
            rows.append(candidates.features[i])
            labels.append(ratings.get(product, 0.0))
            judged.append(product in ratings)
            groups.append(number)
    return fit_ranker(np.stack(rows), np.array(labels), np.array(judged), np.array(groups))


def _score_term(
    term: str,
    judged: dict[str, float],
    plain: LexicalIndex,
    catalogues: dict[str, Catalogue],
    encoders: dict[str, Any],
    ranker: Any,
    results: dict[str, list[TermResult]],
) -> None:
    from streamrec.training.search_ranker import predict

    def scored(name: str, ranked: list[str], scores: dict[str, float]) -> None:
        results[name].append(_ranking_figures(ranked, judged, scores))

    for name, index in (("bm25", plain), ("bm25-stemmed", catalogues["fp32"].lexical)):
        hits = index.search(term, 1000)
        scored(name, [p for p, _ in hits[:100]], dict(hits))
    by_variant = {
        variant: retrieve(catalogues[variant], term, encoders[variant].encode([term])[0], extra=list(judged))
        for variant in ("fp32", "int8")
    }
    for name, variant in (("dense", "fp32"), ("dense-int8", "int8")):
        found = by_variant[variant]
        scored(name, found.dense, dict(zip(found.product_ids, found.column("dense_similarity").tolist(), strict=True)))
    candidates = by_variant[SERVED_VARIANT]  # what the scorer retrieves, the judged products after it
    retrieved = candidates.product_ids[: candidates.retrieved]
    fused = dict(zip(candidates.product_ids, candidates.column("fused").tolist(), strict=True))
    scored("hybrid", retrieved, fused)
    predicted, scores = predict(ranker, candidates.features)
    relevance = dict(zip(candidates.product_ids, predicted.tolist(), strict=True))
    score = dict(zip(candidates.product_ids, scores.tolist(), strict=True))
    ranked = sorted(retrieved, key=lambda p: -score[p])
    result = _ranking_figures(ranked, judged, score)
    result.squared_errors = [(relevance[p] - r) ** 2 for p, r in judged.items() if p in relevance]
    results[SERVED].append(result)


def train_served_ranker(
    labels: Path, out: Path, *, encoder_dir: Path | None = None, cache_dir: Path | None = None, log: Log = print
) -> Path:
    """Fit the ranker on every term of `labels` as the scorer will use it, and write `out`/ranker.onnx with a
    manifest (`search.json`) of what it was trained on; returns `out`."""
    from streamrec.search.encoder import TextEncoder, default_encoder_dir
    from streamrec.search.ranker import RANKER_FILE
    from streamrec.training.search_ranker import export_ranker
    from streamrec.training.text_encoder import ensure_encoder

    frame = load_labels(labels)
    listings = catalogue_of(frame)
    encoder_dir = ensure_encoder(encoder_dir or default_encoder_dir())
    encoder = TextEncoder.load(encoder_dir, SERVED_VARIANT)
    catalogue = _catalogue(listings, encoder, SERVED_VARIANT, cache_dir, log)
    judged = _judged(frame)
    log(f"training the search ranker on {len(judged)} terms, {len(frame)} judgements")
    ranker = _fit(catalogue, encoder, judged)
    out.mkdir(parents=True, exist_ok=True)
    export_ranker(ranker, len(FEATURES), out / RANKER_FILE)
    manifest = {
        "features": list(FEATURES),
        "labels": str(labels),
        "terms": len(judged),
        "judgements": len(frame),
        "encoder_variant": SERVED_VARIANT,
        "encoder_files": encoder.manifest.files,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / SEARCH_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out
