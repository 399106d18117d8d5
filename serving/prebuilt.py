"""Page-view answers assembled from the bytes the worker stored with a refreshed list, without decoding them.

The scorer's Score builds each session's list once as serialized `RecommendResponse.items` entries (`encode`);
the worker stores them with the list (features/session_store.py, `Recommendations.wire`). A page view of that
session whose state has not moved on since is then answered with those entries, less the request's excludes,
followed by the response's own fields (`answer`): a protobuf message is the concatenation of its fields, so no
message is built and nothing is parsed but the entries' length prefixes. Every other page view takes the
built path (serving/recommender.py), and both answer the same bytes for the same list (tests/integration).
"""

from __future__ import annotations

from typing import Any

from streamrec.features.session_store import Recommendations, SessionState
from streamrec.protos import recommender_pb2 as pb
from streamrec.serving.rules import Scored, from_model

ITEMS_TAG = 0x0A  # RecommendResponse.items: field 1, length-delimited


def encode(items: list[Scored]) -> bytes:
    """A list as RecommendResponse.items entries; empty when no item came from the session model (a popular
    list is answered with fallback=true on the built path, so it must not be served as refreshed)."""
    if not from_model(items):
        return b""
    response = pb.RecommendResponse()
    add_items(response.items, items)
    return response.SerializeToString()


def add_items(field: Any, items: list[Scored]) -> None:
    """Append scored items to a repeated ScoredItem field (`add` costs half of building messages and a list)."""
    add = field.add
    for item_id, score, reason in items:
        add(item_id=item_id, score=score, reason=reason)


def answer_for(
    state: SessionState | None,
    refreshed: Recommendations | None,
    model_version: str,
    k: int,
    exclude: set[str],
    now_ms: int,
) -> bytes | None:
    """The serialized answer to a page view from the stored entries, or None where the built path must answer.

    The entries serve only while they are the session's current answer: built by the model in service for the
    session's last event, so the session's purchases and its last item are already left out; `exclude` holds
    what the request adds (its excludes and the page's item).
    """
    if refreshed is None or state is None or not refreshed.wire or not state.items:
        return None
    if refreshed.event_id != state.last_event_id or refreshed.model_version != model_version:
        return None
    entries = select(refreshed.entries(), refreshed.items, k, exclude)
    if entries is None:
        return None
    return answer(entries, model_version, max(0, now_ms - state.updated_ms), refreshed.event_id)


def select(entries: bytes, items: list[tuple[str, float]], k: int, exclude: set[str]) -> bytes | None:
    """The first `k` entries whose item is not excluded, as bytes; None when fewer than `k` remain or the
    entries do not match the list (written by another version: the built path answers)."""
    if not exclude and len(items) == k:
        return entries
    out = []
    start = taken = 0
    for item_id, _ in items:
        end = _entry_end(entries, start)
        if end < 0:
            return None
        if item_id not in exclude:
            out.append(entries[start:end])
            taken += 1
            if taken == k:
                return b"".join(out)
        start = end
    return None


def answer(entries: bytes, model_version: str, state_age_ms: int, cause_event_id: str) -> bytes:
    """A serialized RecommendResponse: the entries, then the fields of a refreshed answer."""
    tail = pb.RecommendResponse(
        model_version=model_version, state_age_ms=state_age_ms, source="refreshed", cause_event_id=cause_event_id
    )
    return entries + tail.SerializeToString()


def _entry_end(entries: bytes, start: int) -> int:
    """Where the entry that starts at `start` ends; -1 when no entry starts there."""
    if start >= len(entries) or entries[start] != ITEMS_TAG:
        return -1
    length = shift = 0
    pos = start + 1
    while pos < len(entries):
        byte = entries[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            end = pos + length
            return end if end <= len(entries) else -1
        shift += 7
    return -1
