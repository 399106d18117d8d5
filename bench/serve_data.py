"""The serve benchmark's sessions and their Redis rows: session states (ours reads) and Feast features (naive reads).

Sessions come from the synthetic clickstream when the model knows their items (a model trained on it), else
they are drawn from the model's own vocabulary (a real-data model, a synthetic catalogue), so that every
request reaches the model rather than the popularity fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from streamrec.features.online import FeatureLayout
from streamrec.features.schema import MAX_RECENT_ITEMS, SESSION_TTL_S
from streamrec.features.session_store import Recommendations, SessionState, recs_key, session_key
from streamrec.redis import sync_client

SESSION_SEED = 61  # synthetic sessions drawn in the training world, but not the ones it was trained on
MIN_KNOWN_SHARE = 0.9  # below this share of synthetic sessions with a known item, sample the vocabulary instead
MEAN_LENGTH = 6.0  # of sessions drawn from a vocabulary: the synthetic clickstream's mean
PIPELINE_ROWS = 1000
REFRESH_BATCH = 64  # sessions per Score call, as a worker's batch


@dataclass
class Session:
    items: list[str] = field(default_factory=list)  # viewed or clicked, oldest first
    carts: list[str] = field(default_factory=list)
    purchases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sessions:
    by_id: dict[str, Session]
    source: str  # what they came from, for the result's `data`


def make_sessions(vocabulary: list[str], n: int, seed: int = SESSION_SEED) -> Sessions:
    """`n` sessions whose items the model knows (`vocabulary[0]` is padding)."""
    known = set(vocabulary[1:])
    synthetic = synthetic_sessions(n, seed, known)
    if len(synthetic) >= MIN_KNOWN_SHARE * n:
        return Sessions(synthetic, f"synthetic clickstream (training.synthetic, session_seed={seed})")
    return Sessions(vocabulary_sessions(vocabulary, n, seed), f"drawn from the model's vocabulary (seed={seed})")


def synthetic_sessions(n: int, seed: int, known: set[str]) -> dict[str, Session]:
    """Whole synthetic sessions, items unknown to the model dropped; sessions left with no item are skipped."""
    from streamrec.training.synthetic import SyntheticConfig, generate

    sessions: dict[str, Session] = {}
    for event in generate(SyntheticConfig(n_sessions=n, session_seed=seed)):
        if event.item_id not in known:
            continue
        session = sessions.setdefault(event.session_id, Session())
        kind = {"add_to_cart": session.carts, "purchase": session.purchases}.get(event.type, session.items)
        kind.append(event.item_id)
    return {sid: s for sid, s in sessions.items() if s.items}


def vocabulary_sessions(vocabulary: list[str], n: int, seed: int) -> dict[str, Session]:
    """Sessions of uniformly drawn items, lengths 1 + geometric with the synthetic clickstream's mean."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / MEAN_LENGTH, size=n), MAX_RECENT_ITEMS)
    draws = rng.integers(1, len(vocabulary), size=int(lengths.sum()))
    sessions, start = {}, 0
    for row, length in enumerate(lengths.tolist()):
        sessions[f"v{seed}-{row:07d}"] = Session([vocabulary[i] for i in draws[start : start + length]])
        start += length
    return sessions


def last_event_id(session_id: str) -> str:
    return f"{session_id}-last"


def seed_sessions(redis_url: str, project: str, sessions: Sessions) -> None:
    """Write each session's state (no refreshed list, so ours scores it inline) and its Feast feature row."""
    now = int(time.time() * 1000)
    layout = FeatureLayout(project)
    client = sync_client(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for offset, (sid, s) in enumerate(sessions.by_id.items()):
            state = SessionState(
                offset=offset,
                partition=0,
                items=s.items[-MAX_RECENT_ITEMS:],
                carts=s.carts,
                purchases=s.purchases,
                last_event_id=last_event_id(sid),
                last_ts_ms=now,
                updated_ms=now,
                events=len(s.items) + len(s.carts) + len(s.purchases),
                clicks=len(s.items),
                cart_adds=len(s.carts),
                purchase_count=len(s.purchases),
            )
            pipe.set(session_key(project, sid), state.to_json(), ex=SESSION_TTL_S)
            for command in layout.row_commands(
                "session_features",
                sid,
                {
                    "recent_items": state.items,
                    "cart_items": s.carts,
                    "purchased_items": s.purchases,
                    "event_count": state.events,
                    "click_count": state.clicks,
                    "cart_count": state.cart_adds,
                    "purchase_count": state.purchase_count,
                },
                now,
            ):
                pipe.execute_command(*command)
            if len(pipe) >= PIPELINE_ROWS:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


async def refresh_through_score(scorer_address: str, redis_url: str, project: str, sessions: Sessions, k: int) -> int:
    """Refresh every session's list as the worker does: the scorer's batched Score (the worker's own client,
    serialized answers included), stored under the session's recs key as the cause of its last event. Returns
    how many lists came with a serialized answer."""
    from streamrec.stream.adapters import GrpcScorer

    now = int(time.time() * 1000)
    scorer = GrpcScorer(scorer_address, timeout_s=30.0)
    ids = list(sessions.by_id)
    stored: dict[str, Recommendations] = {}
    try:
        for start in range(0, len(ids), REFRESH_BATCH):
            batch = [(sid, sessions.by_id[sid]) for sid in ids[start : start + REFRESH_BATCH]]
            histories = [(sid, s.items[-MAX_RECENT_ITEMS:], s.purchases, last_event_id(sid)) for sid, s in batch]
            refresh = await scorer.score(histories, k)
            for offset, (sid, _) in enumerate(batch, start):
                wire = Recommendations.encode_wire(refresh.wire.get(sid, b""))
                items = refresh.lists.get(sid, [])
                stored[sid] = Recommendations(offset, items, refresh.model_version, last_event_id(sid), now, now, wire)
    finally:
        await scorer.close()
    client = sync_client(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for sid, recs in stored.items():
            pipe.set(recs_key(project, sid), recs.to_json(), ex=SESSION_TTL_S)
            if len(pipe) >= PIPELINE_ROWS:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    return sum(1 for recs in stored.values() if recs.wire)
