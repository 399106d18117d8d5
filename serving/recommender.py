"""What to answer for one page view: refreshed list if current, else the model inline, else trending; then rules.

Logic over already-fetched state and an injected model, so it is tested without Redis or gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from streamrec.features.session_store import Recommendations, SessionState
from streamrec.serving.rules import (
    REASON_POPULAR,
    REASON_RANKED,
    REASON_SESSION,
    REASON_TRENDING,
    Scored,
    apply_rules,
    mark_repeats,
    session_exclusions,
    top_up,
)

Candidates = list[tuple[str, float]] | None


class Model(Protocol):
    """A session model for one request (serving.server binds the runtime in use and the micro-batcher)."""

    @property
    def version(self) -> str: ...

    @property
    def repeats(self) -> bool:
        """Whether the model scores items the session already viewed on purpose (a repeat bias)."""
        ...

    def knows_any(self, history: list[str]) -> bool:
        """Whether any item of the history is in the model's vocabulary (else it can only guess)."""
        ...

    async def candidates(self, history: list[str], limit: int) -> Candidates: ...

    async def many(self, histories: list[list[str]], limit: int) -> list[Candidates]: ...


class Reranker(Protocol):
    """The second stage: reorders a session's retrieval candidates (serving/ranking.py)."""

    async def rerank(self, state: SessionState, candidates: list[tuple[str, float]]) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class Popular:
    """The cold-start list and where it came from."""

    items: list[str]
    from_stream: bool

    @property
    def reason(self) -> str:
        return REASON_TRENDING if self.from_stream else REASON_POPULAR


@dataclass(frozen=True)
class Policy:
    max_per_category: int = 0
    categories: Mapping[str, str] = field(default_factory=dict)
    reranker: Reranker | None = None  # None: retrieval order is the final order
    retrieve: int = 200  # candidates taken from the session model when a reranker will reorder them


@dataclass(frozen=True)
class Answer:
    items: list[Scored]
    model_version: str
    fallback: bool
    state_age_ms: int
    source: str  # refreshed | inline | popularity
    cause_event_id: str = ""  # the event that caused a refreshed list


async def recommend(
    model: Model,
    popular: Popular,
    k: int,
    request_excludes: set[str],
    state: SessionState | None,
    refreshed: Recommendations | None,
    now_ms: int,
    policy: Policy = Policy(),
) -> Answer:
    exclude = set(request_excludes)
    if state is None or not state.items:
        return _popular_answer(model, popular, k, exclude, state, now_ms)
    exclude.update(state.purchases)
    if not model.knows_any(state.items):  # whatever a list holds, it is not this session's model speaking
        return _popular_answer(model, popular, k, exclude, state, now_ms)
    exclude |= session_exclusions(state.items, model.repeats)
    age = max(0, now_ms - state.updated_ms)
    if refreshed is not None and refreshed.event_id == state.last_event_id:
        items = _model_list(refreshed.items, k, exclude, REASON_SESSION, policy, model, state.items)
        if len(items) == k:
            return Answer(items, refreshed.model_version, False, age, "refreshed", refreshed.event_id)
    candidates = await model.candidates(state.items, _limit(k, exclude, policy))
    if candidates is None:  # no item of this session is known to the model
        return _popular_answer(model, popular, k, exclude, state, now_ms)
    reason = REASON_SESSION
    if policy.reranker is not None:
        candidates = await policy.reranker.rerank(state, candidates)
        reason = REASON_RANKED
    items = _model_list(candidates, k, exclude, reason, policy, model, state.items)
    top_up(items, popular.items, k, exclude, popular.reason)
    return Answer(items, model.version, False, age, "inline")


async def score_sessions(
    model: Model, popular: Popular, k: int, histories: list[tuple[str, list[str], set[str]]], policy: Policy = Policy()
) -> list[tuple[str, list[Scored]]]:
    """The worker's batched refresh: one model call for all histories, rules per session."""
    # purchases and request excludes, and the item just clicked where the model does not score repeats
    longest_exclude = max((len(exclude) for _, _, exclude in histories), default=0) + (0 if model.repeats else 1)
    candidates = await model.many([items for _, items, _ in histories], _limit(k, set(), policy) + longest_exclude)
    out = []
    reason = REASON_SESSION if policy.reranker is None else REASON_RANKED
    for (session_id, history, exclude), ranked in zip(histories, candidates, strict=True):
        if ranked and policy.reranker is not None:
            ranked = await policy.reranker.rerank(SessionState(items=history, purchases=sorted(exclude)), ranked)
        exclude = exclude | session_exclusions(history, model.repeats)
        items = _model_list(ranked or [], k, exclude, reason, policy, model, history)
        top_up(items, popular.items, k, exclude, popular.reason)
        out.append((session_id, items))
    return out


def _limit(k: int, exclude: set[str], policy: Policy) -> int:
    if policy.reranker is not None:
        return max(policy.retrieve, k + len(exclude))
    # with a diversity cap some candidates are skipped: ask for more than k
    return (k * 4 if policy.max_per_category else k) + len(exclude)


def _rules(ranked: list[tuple[str, float]], k: int, exclude: set[str], reason: str, policy: Policy) -> list[Scored]:
    return apply_rules(ranked, k, exclude, reason, policy.categories, policy.max_per_category)


def _model_list(
    ranked: list[tuple[str, float]],
    k: int,
    exclude: set[str],
    reason: str,
    policy: Policy,
    model: Model,
    history: list[str],
) -> list[Scored]:
    """The rules over a model's ranking; a repeat-aware model's returns to viewed items are labelled so."""
    items = _rules(ranked, k, exclude, reason, policy)
    return mark_repeats(items, history) if model.repeats else items


def _popular_answer(
    model: Model, popular: Popular, k: int, exclude: set[str], state: SessionState | None, now_ms: int
) -> Answer:
    items: list[Scored] = []
    top_up(items, popular.items, k, exclude, popular.reason)
    age = max(0, now_ms - state.updated_ms) if state is not None else -1
    return Answer(items, model.version, True, age, "popularity")
