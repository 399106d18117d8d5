"""The evaluation protocol of DESIGN §5, implemented once: filtering, time-based test split, validation split.

It follows SR-GNN's `datasets/preprocess.py` step for step, so figures compare with SR-GNN's on the same data:
1. sessions of one event are dropped; 2. items seen fewer than 5 times (counted over all remaining sessions)
are removed and sessions left shorter than 2 dropped; 3. a session's date is its last event; the test set
is the sessions ending after (last date - test span); 4. the vocabulary is the training sessions' items; test
sessions lose items outside it and are dropped if shorter than 2. Validation repeats step 3-4 inside the
training sessions (the last `valid_days` of training), so selection never sees the test set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from streamrec.errors import DataError
from streamrec.training.metrics import all_prefixes
from streamrec.training.sequences import Vocabulary, session_sequences

DAY_MS = 86_400_000


@dataclass(frozen=True)
class ProtocolConfig:
    test_days: float = 7.0
    valid_days: float = 7.0
    min_session_length: int = 2
    min_item_support: int = 5
    date_unit_ms: int = 1  # session dates are floored to this unit (a day for files that only know the day)


@dataclass(frozen=True)
class Split:
    """Encoded sessions (vocabulary indices) of each part, oldest first, and the vocabulary of `train`."""

    vocab: Vocabulary
    train: list[np.ndarray]  # all training sessions: the final model is fitted on these
    test: list[np.ndarray]
    fit: list[np.ndarray]  # training minus the validation slice: models are selected by fitting on these ...
    valid: list[np.ndarray]  # ... and scoring these (items unseen in `fit` removed)
    train_items: list[list[str]]  # training sessions as item ids, for popularity and the artifact

    def sizes(self) -> dict[str, Any]:
        return {
            "items": len(self.vocab) - 1,
            "train_sessions": len(self.train),
            "train_prefixes": len(all_prefixes(self.train)),
            "test_sessions": len(self.test),
            "test_prefixes": len(all_prefixes(self.test)),
            "fit_sessions": len(self.fit),
            "valid_sessions": len(self.valid),
            "valid_prefixes": len(all_prefixes(self.valid)),
        }


def filter_sessions(sessions: list[list[str]], dates: np.ndarray, cfg: ProtocolConfig) -> tuple[list, np.ndarray]:
    """Steps 1-2: drop short sessions, then rare items, then sessions left too short."""
    keep = [i for i, s in enumerate(sessions) if len(s) >= cfg.min_session_length]
    sessions, dates = [sessions[i] for i in keep], dates[keep]
    counts = Counter(item for s in sessions for item in s)
    filtered = [[item for item in s if counts[item] >= cfg.min_item_support] for s in sessions]
    keep = [i for i, s in enumerate(filtered) if len(s) >= cfg.min_session_length]
    return [filtered[i] for i in keep], dates[keep]


def split_by_time(dates: np.ndarray, span_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: masks (before, after) of the split at max(date) - span; a session exactly at it is in neither,
    as in SR-GNN (which uses < and >)."""
    cut = dates.max() - span_days * DAY_MS
    return dates < cut, dates > cut


def _restrict(sessions: list[np.ndarray], known: set[int] | None, min_len: int) -> list[np.ndarray]:
    out = [s if known is None else s[np.isin(s, list(known))] for s in sessions]
    return [s for s in out if len(s) >= min_len]


def make_split(frame: pd.DataFrame, cfg: ProtocolConfig) -> Split:
    """Canonical events -> the filtered, time-split, encoded sessions of the protocol."""
    raw, ends = session_sequences(frame)
    dates = (ends // cfg.date_unit_ms) * cfg.date_unit_ms
    sessions, dates = filter_sessions(raw, dates, cfg)
    if not sessions:
        raise DataError("no sessions are left after filtering (sessions of length >= 2, items seen >= 5 times)")
    train_mask, test_mask = split_by_time(dates, cfg.test_days)
    train_items = [sessions[i] for i in np.flatnonzero(train_mask)]
    if not train_items or not test_mask.any():
        raise DataError(f"the {cfg.test_days}-day test split leaves an empty training or test set")
    vocab = Vocabulary.build(train_items)
    train = vocab.encode(train_items)  # ordered by date: session_sequences sorts sessions by their end
    test = _restrict(vocab.encode(sessions[i] for i in np.flatnonzero(test_mask)), None, cfg.min_session_length)
    fit_mask, valid_mask = split_by_time(dates[train_mask], cfg.valid_days)
    fit = [train[i] for i in np.flatnonzero(fit_mask)]
    fit_known = {int(i) for s in fit for i in s}
    valid = _restrict([train[i] for i in np.flatnonzero(valid_mask)], fit_known, cfg.min_session_length)
    if not fit or not valid:
        raise DataError(f"the {cfg.valid_days}-day validation split leaves no fitting or validation sessions")
    return Split(vocab, train, test, fit, valid, train_items)
