"""`streamrec search evaluate` and `search train` on the synthetic catalogue's graded labels (Home Depot layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import DataError
from streamrec.search.ranker import RANKER_FILE, SearchRanker
from streamrec.training.search_eval import SERVED, evaluate_search, load_labels, train_served_ranker
from streamrec.training.synthetic_catalogue import synthetic_labels, synthetic_products
from tests.search.exported import exported_encoder

METHODS = {"bm25", "bm25-stemmed", "dense", "dense-int8", "hybrid", SERVED}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_encoder(tmp_path_factory)


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("labels")
    products = synthetic_products()
    train, test = folder / "train.csv", folder / "test.csv"
    synthetic_labels(products, 160, seed=1).to_csv(train, index=False, encoding="latin-1")
    synthetic_labels(products, 40, seed=2).to_csv(test, index=False, encoding="latin-1")
    return train, test


def test_every_method_is_scored_on_the_same_catalogue_and_one_is_served(
    labels: tuple[Path, Path], encoder_dir: Path, tmp_path: Path
) -> None:
    report = evaluate_search(labels[0], encoder_dir=encoder_dir, cache_dir=tmp_path)
    methods = report["methods"]
    assert set(methods) == METHODS and [m for m, f in methods.items() if f["served"]] == [SERVED]
    assert report["catalogue_products"] == load_labels(labels[0])["product_id"].nunique()
    assert report["protocol"].startswith("5 folds")
    for figures in methods.values():
        assert 0 < figures["mrr@10"] <= 100 and 0 < figures["ndcg@10"] <= 100
    assert methods[SERVED]["rmse"] is not None and methods["bm25"]["rmse"] is None
    # stems and misspellings (a fifth of the synthetic terms have a typo) beat plain BM25; the ranker beats both
    assert methods["bm25-stemmed"]["mrr@10"] > methods["bm25"]["mrr@10"]
    assert methods[SERVED]["mrr@10"] > methods["bm25"]["mrr@10"]
    assert list(tmp_path.glob("titles-*.npy")), "title embeddings are cached"


def test_a_held_out_file_is_scored_with_a_ranker_learnt_on_the_training_file_only(
    labels: tuple[Path, Path], encoder_dir: Path
) -> None:
    report = evaluate_search(labels[0], labels[1], encoder_dir=encoder_dir)
    assert report["protocol"] == "held-out file"
    assert report["test_terms"] == load_labels(labels[1])["term"].nunique()
    both = load_labels(labels[0])["product_id"].tolist() + load_labels(labels[1])["product_id"].tolist()
    assert report["catalogue_products"] == len(set(both))


def test_search_train_writes_a_ranker_the_scorer_loads(
    labels: tuple[Path, Path], encoder_dir: Path, tmp_path: Path
) -> None:
    out = train_served_ranker(labels[0], tmp_path / "search", encoder_dir=encoder_dir, log=lambda _: None)
    ranker = SearchRanker.load(out / RANKER_FILE)
    features = np.random.default_rng(0).random((5, ranker.session.get_inputs()[0].shape[1]), dtype=np.float32)
    relevance, score = ranker.predict(features)
    assert relevance.shape == score.shape == (5,) and ((relevance >= 1.0) & (relevance <= 3.0)).all()
    assert ((score >= 0.0) & (score <= relevance - 1.0 + 1e-6)).all()  # P(judged) x (relevance - 1)
    assert (out / "search.json").is_file()


def test_a_file_without_the_label_columns_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="lacks the columns"):
        load_labels(path)
