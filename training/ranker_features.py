"""Offline ranker inputs: the stream's item aggregates at any past time, and the protocol's prefixes with their times.

`StreamAggregates` answers "what did the item_features row of item i hold just before time t" for millions of
(item, t) pairs at once, with stream/lua/apply_events.lua's definitions: counts per kind in the 1 h window of
5-minute buckets and the 24 h window of hourly buckets, both ending at the item's last event (the worker
rewrites a row only when the item is touched, so the row is as of that event), the trending score decayed
with a 1 h half-life (weights view 1, click 1, cart 3, purchase 5), conversion = purchases_24h /
max(1, views_24h + clicks_24h), and no row when the item's last event is older than the row's 2-day TTL.
Only events strictly before t count. `timed_sessions` redoes training/protocol.py's split keeping each event's
time and the session's viewed items (the stream's `state.items`), and checks it against `make_split`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamrec.errors import DataError
from streamrec.features.ranker_inputs import FEATURES, MAX_HISTORY, ItemMeta, candidate_features, item_block
from streamrec.features.schema import ITEM_TTL_S, TRENDING_HALF_LIFE_MS
from streamrec.training.protocol import ProtocolConfig, make_split, split_by_time
from streamrec.training.sequences import SEQUENCE_TYPES, Vocabulary, pad_right

KIND = {"view": 0, "click": 1, "add_to_cart": 2, "purchase": 3}
WEIGHT = (1.0, 1.0, 3.0, 5.0)  # apply_events.lua's WEIGHT, in KIND order
WINDOWS = ((300_000, 12), (3_600_000, 24))  # (bucket width ms, buckets): 1 h and 24 h
VIEWED = ("view", "click")  # the event types the stream appends to a session's state.items
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class StreamAggregates:
    """All events sorted by (item, time) with running counts per kind and the running trending score."""

    def __init__(self, frame: pd.DataFrame) -> None:
        used = frame[frame["type"].isin(list(KIND))]
        codes, uniques = pd.factorize(used["item_id"].astype(str))
        ts = used["ts_ms"].to_numpy(dtype=np.int64)
        kinds = used["type"].map(KIND).to_numpy(dtype=np.int64)
        order = np.lexsort((ts, codes))
        self.index = {str(item): i for i, item in enumerate(uniques)}
        self.codes, self.ts, kinds = codes[order].astype(np.int64), ts[order], kinds[order]
        self.t0 = int(ts.min())
        self.span = int(ts.max()) - self.t0 + 30 * 86_400_000  # key stride per item: wider than any query offset
        self.keys = self.codes * self.span + (self.ts - self.t0)
        self.starts = np.searchsorted(self.codes, np.arange(len(uniques)), side="left")
        self.cum = np.zeros((len(KIND), len(ts) + 1), dtype=np.int64)
        for k in range(len(KIND)):
            self.cum[k, 1:] = np.cumsum(kinds == k)
        self.trending = _running_trending(self.codes, self.ts, kinds)

    def rows_at(self, items: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For item ids [M] and times [M]: (raw item_features rows [M, 10], row event times [M], row exists [M])."""
        code = np.array([self.index.get(str(i), -1) for i in items], dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        safe = np.maximum(code, 0)
        start = self.starts[safe] if len(self.starts) else np.zeros_like(safe)
        pos = np.searchsorted(self.keys, safe * self.span + (t - self.t0), side="left")  # first event at >= t
        last = np.maximum(pos - 1, 0)
        row_ts = self.ts[last] if len(self.ts) else np.zeros_like(t)
        known = (code >= 0) & (pos > start) & (t - row_ts <= ITEM_TTL_S * 1000)
        raw = np.zeros((len(code), 10), dtype=np.float64)
        for w, (width, count) in enumerate(WINDOWS):
            lower = (row_ts // width - count + 1) * width  # the window's first bucket, as of the row's time
            lo = np.maximum(np.searchsorted(self.keys, safe * self.span + (lower - self.t0), side="left"), start)
            for k in range(len(KIND)):
                raw[:, 4 * w + k] = self.cum[k, pos] - self.cum[k, np.minimum(lo, pos)]
        raw[:, 8] = self.trending[last] if len(self.trending) else 0.0
        raw[:, 9] = raw[:, 7] / np.maximum(1.0, raw[:, 4] + raw[:, 5])
        raw[~known] = 0.0
        return raw, np.where(known, row_ts, 0), known


def _running_trending(codes: np.ndarray, ts: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """The trending score after each event of an item, events in time order: score*decay(dt) + weight."""
    decay = np.log(2) / TRENDING_HALF_LIFE_MS
    out = np.empty(len(ts), dtype=np.float64)
    score, prev_code, prev_ts = 0.0, -1, 0
    for j, (code, t, kind) in enumerate(zip(codes.tolist(), ts.tolist(), kinds.tolist(), strict=True)):
        score = WEIGHT[kind] + (score * float(np.exp(-(t - prev_ts) * decay)) if code == prev_code else 0.0)
        out[j], prev_code, prev_ts = score, code, t
    return out


@dataclass(frozen=True)
class TimedSession:
    session_id: str
    items: list[str]  # the protocol's items of the session, in order
    times: list[int]  # their event times
    seen: list[int]  # per item: how many viewed events of the raw session came up to and including it
    viewed: list[str]  # the raw session's viewed items (view/click), in order: the stream's state.items


@dataclass(frozen=True)
class TimedSplit:
    vocab: Vocabulary
    fit: list[list[str]]
    valid: list[TimedSession]
    test: list[TimedSession]


def timed_sessions(frame: pd.DataFrame, cfg: ProtocolConfig) -> TimedSplit:
    """training/protocol.py's steps with times kept; raises DataError if the result differs from make_split's."""
    used = frame[frame["type"].isin(SEQUENCE_TYPES)].sort_values(["session_id", "ts_ms"], kind="stable")
    grouped = used.groupby("session_id", sort=False)
    lists = grouped.agg({"item_id": list, "ts_ms": list, "type": list})
    ends = grouped["ts_ms"].max().to_numpy()
    order = np.argsort(ends, kind="stable")
    columns = [lists[c].tolist() for c in ("item_id", "ts_ms", "type")]
    ids = [str(s) for s in lists.index]
    raw = [(ids[i], columns[0][i], columns[1][i], columns[2][i]) for i in order]
    dates = (ends[order] // cfg.date_unit_ms) * cfg.date_unit_ms
    keep = [i for i, r in enumerate(raw) if len(r[1]) >= cfg.min_session_length]
    counts = Counter(item for i in keep for item in raw[i][1])
    sessions = [_timed(raw[i], lambda item: counts[item] >= cfg.min_item_support) for i in keep]
    kept = [i for i, s in enumerate(sessions) if len(s.items) >= cfg.min_session_length]
    sessions, dates = [sessions[i] for i in kept], dates[keep][kept]
    train_mask, test_mask = split_by_time(dates, cfg.test_days)
    train = [s for s, m in zip(sessions, train_mask, strict=True) if m]
    vocab = Vocabulary.build([s.items for s in train])
    known = set(vocab.item_ids[1:])
    test = _restricted([s for s, m in zip(sessions, test_mask, strict=True) if m], known, cfg.min_session_length)
    fit_mask, valid_mask = split_by_time(dates[train_mask], cfg.valid_days)
    fit = [s.items for s, m in zip(train, fit_mask, strict=True) if m]
    fit_known = {item for s in fit for item in s}
    valid = _restricted([s for s, m in zip(train, valid_mask, strict=True) if m], fit_known, cfg.min_session_length)
    _check_against_protocol(frame, cfg, vocab, valid, test)
    return TimedSplit(vocab, fit, valid, test)


def _timed(row: tuple[str, list[str], list[int], list[str]], keep: Callable[[str], bool]) -> TimedSession:
    session_id, items, times, types = row
    seen_so_far = np.cumsum([t in VIEWED for t in types]).tolist()
    viewed = [item for item, t in zip(items, types, strict=True) if t in VIEWED]
    session = TimedSession(session_id, list(items), [int(t) for t in times], seen_so_far, viewed)
    return _subset(session, keep)


def _subset(s: TimedSession, keep: Callable[[str], bool]) -> TimedSession:
    idx = [j for j, item in enumerate(s.items) if keep(item)]
    return TimedSession(
        s.session_id, [s.items[j] for j in idx], [s.times[j] for j in idx], [s.seen[j] for j in idx], s.viewed
    )


def _restricted(sessions: list[TimedSession], known: set[str], min_len: int) -> list[TimedSession]:
    """Protocol step 4: drop items outside `known`, then sessions left shorter than `min_len`."""
    out = [_subset(s, known.__contains__) for s in sessions]
    return [s for s in out if len(s.items) >= min_len]


def _check_against_protocol(
    frame: pd.DataFrame, cfg: ProtocolConfig, vocab: Vocabulary, valid: list[TimedSession], test: list[TimedSession]
) -> None:
    split = make_split(frame, cfg)
    same = split.vocab.item_ids == vocab.item_ids
    for ours, theirs in ((valid, split.valid), (test, split.test)):
        encoded = vocab.encode([s.items for s in ours])
        if len(encoded) != len(theirs):
            same = False
            continue
        same = same and all(np.array_equal(a, b) for a, b in zip(encoded, theirs, strict=True))
    if not same:
        raise DataError("the ranker's timed split differs from training/protocol.py's split; update ranker_features")


@dataclass(frozen=True)
class PrefixSet:
    """Every prefix of the sessions: the model's input items, the stream's view history then, its time, target."""

    inputs: list[list[str]]
    histories: list[list[str]]
    times: np.ndarray  # time of the prefix's last event; item features use events strictly before it
    targets: list[str]
    session_index: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def all_timed_prefixes(sessions: list[TimedSession]) -> PrefixSet:
    inputs, histories, times, targets, owner = [], [], [], [], []
    for s_idx, s in enumerate(sessions):
        for cut in range(1, len(s.items)):
            inputs.append(s.items[:cut])
            histories.append(s.viewed[: s.seen[cut - 1]][-MAX_HISTORY:])
            times.append(s.times[cut - 1])
            targets.append(s.items[cut])
            owner.append(s_idx)
    return PrefixSet(inputs, histories, np.array(times, dtype=np.int64), targets, np.array(owner, dtype=np.int64))


class Retriever:
    """The session model's ONNX top-k over item ids, as the scorer runs it (known items, the last max_seq_len)."""

    def __init__(self, model_path: Path, vocabulary: list[str], max_seq_len: int) -> None:
        import onnxruntime as ort  # offline candidate generation only

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a shared 2-core machine: one thread is as fast and disturbs less
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.vocabulary = np.array(vocabulary, dtype=object)
        self.index = {item: i for i, item in enumerate(vocabulary) if i}
        self.max_seq_len = max_seq_len

    def top(self, inputs: list[list[str]], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(candidate item ids [P, K] object, scores [P, K] float32); rows with no known item are all ''."""
        encoded = [[self.index[i] for i in seq if i in self.index][-self.max_seq_len :] for seq in inputs]
        k = self._k()
        items = np.zeros((len(encoded), k), dtype=np.int64)
        scores = np.full((len(encoded), k), -np.inf, dtype=np.float32)
        usable = np.flatnonzero([len(e) > 0 for e in encoded])
        order = usable[np.argsort([len(encoded[i]) for i in usable], kind="stable")]
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            batch, lengths = pad_right([np.array(encoded[r], dtype=np.int64) for r in rows])
            scores[rows], items[rows] = self.session.run(None, {"items": batch, "lengths": lengths})
        return self.vocabulary[items], scores

    def _k(self) -> int:
        _, top = self.session.run(None, {"items": np.ones((1, 1), np.int64), "lengths": np.ones(1, np.int64)})
        return int(top.shape[1])


@dataclass(frozen=True)
class RankerData:
    """Prefixes x candidates: features [P, K, F], where the target is among the candidates (-1: not there)."""

    features: np.ndarray
    target: np.ndarray
    retrieval_scores: np.ndarray  # [P, K]
    session_index: np.ndarray

    def take(self, rows: np.ndarray) -> RankerData:
        return RankerData(self.features[rows], self.target[rows], self.retrieval_scores[rows], self.session_index[rows])


def build_data(
    prefixes: PrefixSet, retriever: Retriever, aggregates: StreamAggregates, meta: ItemMeta, log: Log = _quiet
) -> RankerData:
    """Candidates for every prefix, then each candidate's features exactly as serving/ranking.py computes them
    online, with the item rows the stream held just before the prefix's time."""
    cand, scores = retriever.top(prefixes.inputs)
    usable = np.flatnonzero(cand[:, 0] != "")  # no known item: the scorer would answer from popularity
    log(f"{len(usable)} of {len(prefixes)} prefixes have candidates; computing features")
    p, k = len(usable), cand.shape[1]
    times = np.repeat(prefixes.times[usable], k)
    raw, row_ts, known = aggregates.rows_at(cand[usable].ravel(), times)
    blocks = item_block(raw, row_ts, known, times).reshape(p, k, -1)
    features = np.empty((p, k, len(FEATURES)), dtype=np.float32)
    target = np.full(p, -1, dtype=np.int64)
    for row, src in enumerate(usable.tolist()):
        items = cand[src].tolist()
        features[row] = candidate_features(prefixes.histories[src], items, scores[src], blocks[row], meta)
        hit = np.flatnonzero(cand[src] == prefixes.targets[src])
        target[row] = hit[0] if len(hit) else -1
    return RankerData(features, target, scores[usable], prefixes.session_index[usable])


def item_meta_maps(frame: pd.DataFrame, items: list[str]) -> dict[str, dict[str, Any]]:
    """item_meta.json for `items`: each item's latest known category and price (absent where the data has none)."""
    latest = frame.sort_values("ts_ms", kind="stable")
    wanted = latest[latest["item_id"].isin(set(items))]
    cats = wanted[wanted["category_id"].astype(str) != ""].groupby("item_id")["category_id"].last()
    prices = wanted[wanted["price"].notna()].groupby("item_id")["price"].last()
    return {
        "categories": {str(k): str(v) for k, v in cats.items()},
        "prices": {str(k): float(v) for k, v in prices.items()},
    }
