"""The evaluation protocol of DESIGN §5, implemented once: filtering, time-based test split, validation split.

It follows SR-GNN's `datasets/preprocess.py` step for step, so figures compare with SR-GNN's on the same data:
1. sessions of one event are dropped; 2. items seen fewer than 5 times (counted over all remaining sessions)
are removed and sessions left shorter than 2 dropped; 3. a session's date is its last event; the test set
is the sessions ending after (last date - test span); 4. the vocabulary is the training sessions' items; test
sessions lose items outside it and are dropped if shorter than 2. Validation repeats step 3-4 inside the
training sessions (the last `valid_days` of training), so selection never sees the test set.

A named dataset brings its own windows (training/datasets.py); a file of any other shop gets them from its own
time span (`fit_to_data`): the last day when the data span weeks, else the last tenth of the span, widened
where needed to hold a minimum of sessions, and the validation window chosen the same way inside training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from streamrec.errors import DataError
from streamrec.training.metrics import all_prefixes
from streamrec.training.sequences import Vocabulary, session_events

DAY_MS = 86_400_000
LONG_SPAN_DAYS = 14.0  # data spanning this long or longer: the window is the last day
SPAN_SHARE = 0.1  # of a shorter span: the window is its last tenth ...
MIN_WINDOW_SESSIONS = 50  # ... widened to hold at least this many sessions ...
MAX_WINDOW_SHARE = 0.25  # ... but never more than this share of them
MIN_SPLIT_SESSIONS = 8  # fewer sessions than this cannot be split into fit, validation and test


@dataclass(frozen=True)
class ProtocolConfig:
    test_days: float = 7.0
    valid_days: float = 7.0
    min_session_length: int = 2
    min_item_support: int = 5
    date_unit_ms: int = 1  # session dates are floored to this unit (a day for files that only know the day)
    basis: str = "fixed"  # how the windows were chosen, for the reports: fixed, flags, or from the data


@dataclass(frozen=True)
class Split:
    """Encoded sessions (vocabulary indices) of each part, oldest first, and the vocabulary of `train`."""

    vocab: Vocabulary
    train: list[np.ndarray]  # all training sessions: the final model is fitted on these
    test: list[np.ndarray]
    fit: list[np.ndarray]  # training minus the validation slice: models are selected by fitting on these ...
    valid: list[np.ndarray]  # ... and scoring these (items unseen in `fit` removed)
    train_items: list[list[str]]  # training sessions as item ids, for popularity and the artifact
    train_kinds: list[np.ndarray]  # each training event's kind (sequences.EVENT_KINDS), aligned with `train`
    fit_kinds: list[np.ndarray]  # the same for `fit`

    @property
    def has_signals(self) -> bool:
        """Whether the training sessions hold carts or purchases, so that a type weighting can matter."""
        return any(k.any() for k in self.train_kinds)

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


@dataclass(frozen=True)
class Sessions:
    """Sessions as item ids (oldest first), each event's kind beside its item, and each session's date."""

    items: list[list[str]]
    kinds: list[list[int]]
    dates: np.ndarray

    def subset(self, keep: list[int]) -> Sessions:
        return Sessions([self.items[i] for i in keep], [self.kinds[i] for i in keep], self.dates[keep])


def filter_sessions(sessions: Sessions, cfg: ProtocolConfig) -> Sessions:
    """Steps 1-2: drop short sessions, then rare items, then sessions left too short."""
    sessions = sessions.subset([i for i, s in enumerate(sessions.items) if len(s) >= cfg.min_session_length])
    counts = Counter(item for s in sessions.items for item in s)
    items: list[list[str]] = []
    kinds: list[list[int]] = []
    for session, session_kinds in zip(sessions.items, sessions.kinds, strict=True):
        kept = [
            (item, kind)
            for item, kind in zip(session, session_kinds, strict=True)
            if counts[item] >= cfg.min_item_support
        ]
        items.append([item for item, _ in kept])
        kinds.append([kind for _, kind in kept])
    filtered = Sessions(items, kinds, sessions.dates)
    return filtered.subset([i for i, s in enumerate(items) if len(s) >= cfg.min_session_length])


def split_by_time(dates: np.ndarray, span_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: masks (before, after) of the split at max(date) - span; a session exactly at it is in neither,
    as in SR-GNN (which uses < and >)."""
    cut = dates.max() - span_days * DAY_MS
    return dates < cut, dates > cut


def _restrict(sessions: list[np.ndarray], known: set[int] | None, min_len: int) -> list[np.ndarray]:
    out = [s if known is None else s[np.isin(s, list(known))] for s in sessions]
    return [s for s in out if len(s) >= min_len]


def filtered_sessions(frame: pd.DataFrame, cfg: ProtocolConfig) -> Sessions:
    """Steps 1-2 on canonical events: the kept sessions (oldest first), their events' kinds and their dates."""
    items, kinds, ends = session_events(frame)
    sessions = filter_sessions(Sessions(items, kinds, (ends // cfg.date_unit_ms) * cfg.date_unit_ms), cfg)
    if not sessions.items:
        raise DataError("no sessions are left after filtering (sessions of length >= 2, items seen >= 5 times)")
    return sessions


def fit_to_data(
    frame: pd.DataFrame, cfg: ProtocolConfig, test_days: float | None = None, valid_days: float | None = None
) -> ProtocolConfig:
    """`cfg` with test and validation windows that fit the data's own span; a window given (a flag) is kept.

    DataError, naming the flags that would help, when the data cannot be split at all.
    """
    dates = filtered_sessions(frame, cfg).dates
    if len(dates) < MIN_SPLIT_SESSIONS:
        raise DataError(
            f"only {len(dates)} sessions are left after filtering (length >= {cfg.min_session_length}, items seen "
            f">= {cfg.min_item_support} times): too few for fitting, validation and test sets; more data is needed"
        )
    test, test_how = (test_days, "given") if test_days is not None else _window(dates, "test")
    before_test = dates[dates < dates.max() - test * DAY_MS]
    if len(before_test) < MIN_SPLIT_SESSIONS:
        advice = (
            "pass a shorter --test-days"
            if test_days is not None
            else "choose the windows with --test-days and --valid-days"
        )
        span = _duration(float(dates.max() - dates.min()))
        raise DataError(
            f"a {_duration(test * DAY_MS)} test window leaves {len(before_test)} sessions for training (at least "
            f"{MIN_SPLIT_SESSIONS} are needed), of data spanning {span}: {advice}"
        )
    valid, valid_how = (valid_days, "given") if valid_days is not None else _window(before_test, "validation")
    if test_days is not None and valid_days is not None:
        basis = "flags"
    else:
        basis = f"from the data: test {test_how}; validation {valid_how}"
    return replace(cfg, test_days=test, valid_days=valid, basis=basis)


def _window(dates: np.ndarray, part: str) -> tuple[float, str]:
    """The window (days) at the end of `dates` for `part`, and how it was chosen."""
    ordered = np.sort(dates)
    span = float(ordered[-1] - ordered[0])
    if span <= 0:
        raise DataError(
            f"every session left ends at the same time, so no {part} window can be cut by time; pass --test-days "
            "and --valid-days to choose the windows, or give data that span some time"
        )
    if span >= LONG_SPAN_DAYS * DAY_MS:
        window, how = float(DAY_MS), f"the last day of {_duration(span)}"
    else:
        window, how = SPAN_SHARE * span, f"the last {SPAN_SHARE:.0%} of {_duration(span)}"
    need = min(MIN_WINDOW_SESSIONS, int(MAX_WINDOW_SHARE * len(ordered)))
    if int((ordered > ordered[-1] - window).sum()) < need:
        # midway between the need-th and the (need+1)-th last session: the window then holds `need` of them
        window = float(ordered[-1] - (ordered[-need] + ordered[-need - 1]) / 2)
        how += f", widened to {need} sessions"
    return window / DAY_MS, f"{how} = {_duration(window)}"


def _duration(ms: float) -> str:
    if ms >= 2 * DAY_MS:
        return f"{ms / DAY_MS:.1f} days"
    if ms >= 2 * 3_600_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 60_000:.1f} min"


def make_split(frame: pd.DataFrame, cfg: ProtocolConfig) -> Split:
    """Canonical events -> the filtered, time-split, encoded sessions of the protocol."""
    kept = filtered_sessions(frame, cfg)
    sessions, dates = kept.items, kept.dates
    train_mask, test_mask = split_by_time(dates, cfg.test_days)
    train_items = [sessions[i] for i in np.flatnonzero(train_mask)]
    # every training item is in the vocabulary, so the kinds stay aligned with the encoded sessions
    train_kinds = [np.array(kept.kinds[i], dtype=np.int8) for i in np.flatnonzero(train_mask)]
    if not train_items or not test_mask.any():
        span = _duration(float(dates.max() - dates.min()))
        raise DataError(
            f"the {cfg.test_days:g}-day test split leaves an empty training or test set (the sessions span {span}); "
            "pass a shorter --test-days, or leave both windows to be chosen from the data"
        )
    vocab = Vocabulary.build(train_items)
    train = vocab.encode(train_items)  # ordered by date: session_sequences sorts sessions by their end
    test = _restrict(vocab.encode(sessions[i] for i in np.flatnonzero(test_mask)), None, cfg.min_session_length)
    fit_mask, valid_mask = split_by_time(dates[train_mask], cfg.valid_days)
    fit = [train[i] for i in np.flatnonzero(fit_mask)]
    fit_kinds = [train_kinds[i] for i in np.flatnonzero(fit_mask)]
    fit_known = {int(i) for s in fit for i in s}
    valid = _restrict([train[i] for i in np.flatnonzero(valid_mask)], fit_known, cfg.min_session_length)
    if not fit or not valid:
        raise DataError(
            f"the {cfg.valid_days:g}-day validation split leaves no fitting or validation sessions; pass a shorter "
            "--valid-days, or leave it to be chosen from the data"
        )
    return Split(vocab, train, test, fit, valid, train_items, train_kinds, fit_kinds)
