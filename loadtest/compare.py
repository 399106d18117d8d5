"""`streamrec loadtest compare A B`: two reports side by side, each figure with B's change against A.

Lower is better for latencies, freshness, errors and send lag; higher for throughput. The arrows say which
way each figure moved, and whether that way is better (+) or worse (-), so a regression is seen at a glance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]

# (label, how to read it from a report, higher is better)
FIGURES: list[tuple[str, Getter, bool]] = [
    ("replay events/s", lambda r: r["replay"]["events_per_s"], True),
    ("replay failed", lambda r: r["replay"]["failed"], False),
    ("Recommend ok/s", lambda r: _rec(r, "ok_per_s"), True),
    ("Recommend error rate", lambda r: _rec(r, "error_rate"), False),
    ("Recommend p50 ms", lambda r: _lat(r, "p50_ms"), False),
    ("Recommend p90 ms", lambda r: _lat(r, "p90_ms"), False),
    ("Recommend p99 ms", lambda r: _lat(r, "p99_ms"), False),
    ("Recommend p99.9 ms", lambda r: _lat(r, "p99.9_ms"), False),
    ("Recommend max ms", lambda r: _lat(r, "max_ms"), False),
    ("generator send lag p99 ms", lambda r: (r["recommend"] or {}).get("send_lag", {}).get("p99_ms"), False),
    ("freshness Redis p50 ms", lambda r: r["freshness"]["redis"]["p50_ms"], False),
    ("freshness Redis p99 ms", lambda r: r["freshness"]["redis"]["p99_ms"], False),
    ("freshness Redis missing", lambda r: r["freshness"]["redis"]["missing"], False),
    ("freshness Recommend p50 ms", lambda r: r["freshness"]["recommend"]["p50_ms"], False),
    ("freshness Recommend p99 ms", lambda r: r["freshness"]["recommend"]["p99_ms"], False),
    ("freshness Recommend missing", lambda r: r["freshness"]["recommend"]["missing"], False),
    ("load average at end", lambda r: (r["machine"]["loadavg"].get("end") or [None])[0], False),
]


def _rec(report: dict[str, Any], key: str) -> float | None:
    return (report["recommend"] or {}).get(key)


def _lat(report: dict[str, Any], key: str) -> float | None:
    return ((report["recommend"] or {}).get("latency") or {}).get(key)


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, A, B, change) for every figure both reports can answer."""
    rows = []
    for label, get, higher_better in FIGURES:
        va, vb = _safe(get, a), _safe(get, b)
        rows.append((label, _fmt(va), _fmt(vb), _change(va, vb, higher_better)))
    return rows


def _safe(get: Getter, report: dict[str, Any]) -> float | None:
    try:
        value = get(report)
    except (KeyError, TypeError, IndexError):  # an older or partial report lacks the figure
        return None
    return None if value is None else float(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _change(a: float | None, b: float | None, higher_better: bool) -> str:
    if a is None or b is None:
        return ""
    if a == b:
        return "="
    better = (b > a) == higher_better
    arrow = "up" if b > a else "down"
    ratio = f"x{b / a:.2f}" if a else "new"
    return f"{arrow} {ratio} {'(+)' if better else '(-)'}"


def render(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    rows = compare_rows(a, b)
    head = ("figure", f"A: {a.get('name', name_a)}", f"B: {b.get('name', name_b)}", "B vs A")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    lines = [
        f"A = {name_a} ({a.get('created_at', '?')}), B = {name_b} ({b.get('created_at', '?')})",
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2]), row[3]]))
    return "\n".join(lines)
