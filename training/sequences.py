"""Canonical events into per-session item sequences, the item vocabulary, and the index batches models eat."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamrec.errors import DataError
from streamrec.events import COLUMNS, CanonicalEvent

SEQUENCE_TYPES = ("view", "click", "add_to_cart", "purchase")
# an event's signal kind, the index into a type weighting (views and clicks, carts, purchases)
EVENT_KINDS = {"view": 0, "click": 0, "add_to_cart": 1, "purchase": 2}
N_KINDS = 3


def events_frame(events: Iterable[CanonicalEvent]) -> pd.DataFrame:
    """Canonical events as a DataFrame in the canonical column order (the Parquet layout)."""
    frame = pd.DataFrame.from_records([e.as_row() for e in events], columns=list(COLUMNS))
    if frame.empty:
        raise DataError("no events to train on")
    return frame


def session_sequences(frame: pd.DataFrame) -> tuple[list[list[str]], np.ndarray]:
    """Item ids of each session in event-time order, sessions ordered by their last event; and those end times."""
    items, _, ends = session_events(frame)
    return items, ends


def session_events(frame: pd.DataFrame) -> tuple[list[list[str]], list[list[int]], np.ndarray]:
    """`session_sequences` with each event's kind (EVENT_KINDS) beside its item.

    Sorting is stable, so events with equal timestamps keep the order they had in the input.
    """
    used = frame[frame["type"].isin(SEQUENCE_TYPES)].assign(kind=lambda f: f["type"].map(EVENT_KINDS))
    used = used.sort_values(["session_id", "ts_ms"], kind="stable")
    grouped = used.groupby("session_id", sort=False)
    items, kinds = grouped["item_id"].agg(list), grouped["kind"].agg(list)
    ends = grouped["ts_ms"].max()
    order = np.argsort(ends.to_numpy(), kind="stable")
    return [items.iloc[i] for i in order], [kinds.iloc[i] for i in order], ends.to_numpy()[order]


@dataclass(frozen=True)
class Vocabulary:
    """index -> item id with index 0 the padding entry ''; the layout of the artifact's items.json."""

    item_ids: list[str]

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]]) -> Vocabulary:
        counts = Counter(item for seq in sequences for item in seq)
        # most frequent first, ties by id: deterministic and keeps popular rows of the embedding together
        ordered = sorted(counts, key=lambda item: (-counts[item], item))
        return cls([""] + ordered)

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def encode(self, sequences: Iterable[Sequence[str]]) -> list[np.ndarray]:
        """Item ids to indices; items outside the vocabulary are dropped (as the SR-GNN protocol does)."""
        lookup = self.index()
        return [np.array([lookup[i] for i in seq if i in lookup], dtype=np.int64) for seq in sequences]


def popular_items(sequences: Iterable[Sequence[str]], n: int = 200) -> list[str]:
    counts = Counter(item for seq in sequences for item in seq)
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def pad_right(seqs: Sequence[np.ndarray], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sequences -> (items [B, T] right-padded with 0, lengths [B]); keeps the *last* max_len items."""
    cut = [s[-max_len:] if max_len else s for s in seqs]
    lengths = np.array([len(s) for s in cut], dtype=np.int64)
    items = np.zeros((len(cut), max(int(lengths.max()), 1)), dtype=np.int64)
    for row, seq in enumerate(cut):
        items[row, : len(seq)] = seq
    return items, lengths


def session_parallel_batches(
    seqs: Sequence[np.ndarray],
    batch_size: int,
    rng: np.random.Generator,
    kinds: Sequence[np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """GRU4Rec's session-parallel mini-batches: yields (inputs [B], targets [B], reset [B] bool, target kinds [B]).

    B lanes each walk through one session event by event; when a lane's session ends the next unseen
    session takes the lane and `reset` says its hidden state must start from zero. Sessions are visited
    in a shuffled order; the epoch ends when no session is left to start (the last lanes' tails are cut,
    as in the reference implementation). A target's kind (EVENT_KINDS) comes from `kinds`, aligned with
    `seqs`; 0 without them.
    """
    kinds = kinds if kinds is not None else [np.zeros(len(s), dtype=np.int8) for s in seqs]
    usable = [(s, k) for s, k in zip(seqs, kinds, strict=True) if len(s) >= 2]
    order = rng.permutation(len(usable))
    batch_size = min(batch_size, len(usable))
    lanes = [usable[i] for i in order[:batch_size]]
    next_session = batch_size
    pos = np.zeros(batch_size, dtype=np.int64)
    reset = np.ones(batch_size, dtype=bool)
    while True:
        inputs = np.array([lane[p] for (lane, _), p in zip(lanes, pos, strict=True)], dtype=np.int64)
        targets = np.array([lane[p + 1] for (lane, _), p in zip(lanes, pos, strict=True)], dtype=np.int64)
        target_kinds = np.array([kind[p + 1] for (_, kind), p in zip(lanes, pos, strict=True)], dtype=np.int64)
        yield inputs, targets, reset, target_kinds
        pos += 1
        reset = np.zeros(batch_size, dtype=bool)
        for lane in np.flatnonzero([p + 1 >= len(lane) for (lane, _), p in zip(lanes, pos, strict=True)]):
            if next_session >= len(usable):
                return
            lanes[lane] = usable[order[next_session]]
            next_session += 1
            pos[lane] = 0
            reset[lane] = True


def padded_batches(
    seqs: Sequence[np.ndarray],
    batch_size: int,
    max_len: int,
    rng: np.random.Generator,
    kinds: Sequence[np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Whole sessions as (inputs [B, T], targets [B, T], target kinds [B, T]) with targets 0 where there is
    nothing to predict; a target's kind (EVENT_KINDS) comes from `kinds`, aligned with `seqs`, 0 without them.

    Long sessions are cut into windows of max_len+1 items so that every transition is trained once.
    """
    kinds = kinds if kinds is not None else [np.zeros(len(s), dtype=np.int8) for s in seqs]
    windows: list[tuple[np.ndarray, np.ndarray]] = []
    for s, k in zip(seqs, kinds, strict=True):
        for start in range(0, max(len(s) - 1, 1), max_len):
            window = s[start : start + max_len + 1]
            if len(window) >= 2:
                windows.append((window, k[start : start + max_len + 1]))
    order = rng.permutation(len(windows))
    for begin in range(0, len(order), batch_size):
        chunk = [windows[i] for i in order[begin : begin + batch_size]]
        full, _ = pad_right([items for items, _ in chunk])
        full_kinds, _ = pad_right([kind.astype(np.int64) for _, kind in chunk])
        # the last item of a row has target 0 (padding), which the loss ignores
        yield full[:, :-1].copy(), full[:, 1:].copy(), full_kinds[:, 1:].copy()
