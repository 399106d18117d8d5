"""What to answer for one page view: refreshed list if current, else the model inline, else popularity; then rules.

Pure logic over already-fetched state, so it is tested without Redis or gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from features.session_store import Recommendations, SessionState

REASON_SESSION = "session model"
REASON_POPULAR = "popular now"


class CandidateSource(Protocol):
    """What the rules need of a model (serving.runtime.ModelRuntime in production)."""

    version: str

    def candidates(self, histories: list[list[str]], limit: int | None = None) -> list[list[tuple[str, float]] | None]:
        ...


@dataclass(frozen=True)
class Answer:
    items: list[tuple[str, float, str]]  # (item_id, score, reason)
    model_version: str
    fallback: bool
    state_age_ms: int
    source: str  # refreshed | inline | popularity


def apply_rules(
    ranked: Iterable[tuple[str, float]], k: int, exclude: set[str], reason: str
) -> list[tuple[str, float, str]]:
    """Drop excluded items and duplicates, keep the first k."""
    out: list[tuple[str, float, str]] = []
    seen: set[str] = set()
    for item, score in ranked:
        if item in exclude or item in seen:
            continue
        seen.add(item)
        out.append((item, score, reason))
        if len(out) == k:
            break
    return out


def top_up(items: list[tuple[str, float, str]], popular: list[str], k: int, exclude: set[str]) -> None:
    """Fill a short list with popular items (scored below every model item)."""
    taken = {i for i, _, _ in items} | exclude
    floor = min((s for _, s, _ in items), default=0.0)
    for rank, item in enumerate(popular):
        if len(items) >= k:
            return
        if item not in taken:
            items.append((item, floor - 1.0 - rank * 1e-3, REASON_POPULAR))
            taken.add(item)


def recommend(
    runtime: CandidateSource,
    popular: list[str],
    k: int,
    request_excludes: set[str],
    state: SessionState | None,
    refreshed: Recommendations | None,
    now_ms: int,
) -> Answer:
    exclude = set(request_excludes)
    if state is None or not state.items:
        return _popular_answer(runtime, popular, k, exclude, state, now_ms)
    exclude.update(state.purchases)
    age = max(0, now_ms - state.updated_ms)
    if refreshed is not None and refreshed.event_id == state.last_event_id:
        items = apply_rules(refreshed.items, k, exclude, REASON_SESSION)
        if len(items) == k:
            return Answer(items, refreshed.model_version, False, age, "refreshed")
    candidates = runtime.candidates([state.items], limit=k + len(exclude))[0]
    if candidates is None:  # no item of this session is known to the model
        return _popular_answer(runtime, popular, k, exclude, state, now_ms)
    items = apply_rules(candidates, k, exclude, REASON_SESSION)
    top_up(items, popular, k, exclude)
    return Answer(items, runtime.version, False, age, "inline")


def _popular_answer(
    runtime: CandidateSource, popular: list[str], k: int, exclude: set[str], state: SessionState | None, now_ms: int
) -> Answer:
    items: list[tuple[str, float, str]] = []
    top_up(items, popular, k, exclude)
    age = max(0, now_ms - state.updated_ms) if state is not None else -1
    return Answer(items, runtime.version, True, age, "popularity")


def score_sessions(
    runtime: CandidateSource, popular: list[str], k: int, histories: list[tuple[str, list[str], set[str]]]
) -> list[tuple[str, list[tuple[str, float, str]]]]:
    """The worker's batched refresh: one model call for all histories, rules per session."""
    longest_exclude = max((len(exclude) for _, _, exclude in histories), default=0)
    candidates = runtime.candidates([items for _, items, _ in histories], limit=k + longest_exclude)
    out = []
    for (session_id, _, exclude), ranked in zip(histories, candidates, strict=True):
        items = apply_rules(ranked or [], k, exclude, REASON_SESSION)
        top_up(items, popular, k, exclude)
        out.append((session_id, items))
    return out
