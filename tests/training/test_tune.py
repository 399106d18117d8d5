"""The search on validation: the preset is the first trial, the result is the best trial's settings (never worse on
validation than the preset), and a report says what the search tried."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from streamrec.training.datasets import load_dataset
from streamrec.training.metrics import all_prefixes
from streamrec.training.pipeline import preset
from streamrec.training.protocol import make_split
from streamrec.training.synthetic import SyntheticConfig, write_shop_export
from streamrec.training.train import select_and_train
from streamrec.training.tune import preset_params, summary, tune


@pytest.mark.parametrize("model", ["gru4rec", "sasrec"])
def test_the_search_starts_from_the_preset_and_keeps_the_best_trial(tmp_path: Path, model: str) -> None:
    path = tmp_path / "shop.csv"
    write_shop_export(path, SyntheticConfig(n_sessions=600, span_ms=3 * 3_600_000, session_seed=5))
    dataset = load_dataset(str(path))
    split = make_split(dataset.events, dataset.protocol)
    base = replace(preset(model), epochs=2, amp=False)

    tuned = tune(base, split.fit, all_prefixes(split.valid), len(split.vocab), budget_s=3600, max_trials=3)

    assert len(tuned.trials) == 3
    assert tuned.trials[0]["params"] == preset_params(base)
    best = max(tuned.trials, key=lambda t: t["valid_mrr@20"])
    assert tuned.valid_mrr == best["valid_mrr@20"] >= tuned.trials[0]["valid_mrr@20"]
    assert preset_params(tuned.config) == best["params"] and tuned.config.model == model
    # trial 0 is the preset's own run: the same figure as the untuned selection, from the same initial weights
    untuned = select_and_train(split.fit, split.train, all_prefixes(split.valid), base, len(split.vocab))
    assert tuned.trials[0]["valid_mrr@20"] == untuned.selection.valid[untuned.epochs - 1]["mrr@20"]
    report = summary(tuned, base)
    assert report["trials"] == 3 and report["best"] == best["params"]
    assert report["preset_valid_mrr@20"] == tuned.trials[0]["valid_mrr@20"]
