"""Business rules applied to a ranked list: exclusions, no duplicates, diversity, length, and top-ups."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

REASON_SESSION = "session model"
REASON_RANKED = "ranked for this session"
REASON_TRENDING = "trending now"
REASON_POPULAR = "popular"
REASON_REPEAT = "viewed in this session: the model scores a return"
REASON_SEARCHED = "from your search"  # followed by the query
SEARCH_SHARE = 1 / 3  # of a list for a session that searched, the most its latest query's results take
MODEL_REASONS = frozenset({REASON_SESSION, REASON_RANKED, REASON_REPEAT})  # answers of the session model

Scored = tuple[str, float, str]  # (item_id, score, reason)


def apply_rules(
    ranked: Iterable[tuple[str, float]],
    k: int,
    exclude: set[str],
    reason: str,
    categories: Mapping[str, str] | None = None,
    max_per_category: int = 0,
) -> list[Scored]:
    """Keep ranked items that are not excluded or repeated, at most `max_per_category` of a category (0 = no
    cap; items of unknown category are not capped), until `k` are kept; each with `reason`."""
    return keep_by_rules(((item, score, reason) for item, score in ranked), k, exclude, categories, max_per_category)


def keep_by_rules(
    ranked: Iterable[Scored],
    k: int,
    exclude: set[str],
    categories: Mapping[str, str] | None = None,
    max_per_category: int = 0,
) -> list[Scored]:
    """`apply_rules` for items that carry their own reasons."""
    out: list[Scored] = []
    seen: set[str] = set()
    per_category: Counter[str] = Counter()
    for scored in ranked:
        item = scored[0]
        if item in exclude or item in seen:
            continue
        if max_per_category and categories:
            category = categories.get(item)
            if category is not None:
                if per_category[category] >= max_per_category:
                    continue
                per_category[category] += 1
        seen.add(item)
        out.append(scored)
        if len(out) == k:
            break
    return out


def blend_search(items: list[Scored], hits: Iterable[Scored], k: int, share: float = SEARCH_SHARE) -> list[Scored]:
    """`items` with the session's search results woven in: every second place from the second on takes the next
    hit not listed already, until `share` of `k` are hits; then `items` fill the rest, `k` in all."""
    quota = max(1, round(k * share))
    hits = iter(hits)
    taken = {item for item, _, _ in items}
    woven: list[Scored] = []
    rest = iter(items)
    placed = 0
    while len(woven) < k:
        if placed < quota and len(woven) % 2 == 1:
            hit = next((h for h in hits if h[0] not in taken), None)
            if hit is not None:
                woven.append(hit)
                taken.add(hit[0])
                placed += 1
                continue
            placed = quota  # no hit left
        item = next(rest, None)
        if item is None:
            break
        woven.append(item)
    return woven


def session_exclusions(history: list[str], repeats: bool) -> set[str]:
    """What a session model's list leaves out besides purchases: the item just viewed or clicked, unless the
    model scores repeats on purpose (its `repeat_bias`; then such an item says so, see `mark_repeats`)."""
    return set() if repeats or not history else {history[-1]}


def mark_repeats(items: list[Scored], history: list[str]) -> list[Scored]:
    """Items the session viewed before, kept by a repeat-aware model, carry REASON_REPEAT."""
    seen = set(history)
    return [(item, score, REASON_REPEAT if item in seen else reason) for item, score, reason in items]


def from_model(items: list[Scored]) -> bool:
    """Whether any item of a list came from the session model (else the list is a popularity fallback)."""
    return any(reason in MODEL_REASONS for _, _, reason in items)


def top_up(items: list[Scored], fill: list[str], k: int, exclude: set[str], reason: str) -> None:
    """Fill a short list with `fill` items (scored below every item already there)."""
    taken = {i for i, _, _ in items} | exclude
    floor = min((s for _, s, _ in items), default=0.0)
    for rank, item in enumerate(fill):
        if len(items) >= k:
            return
        if item not in taken:
            items.append((item, floor - 1.0 - rank * 1e-3, reason))
            taken.add(item)
