"""Present a StackStatus: a table for people, a JSON document for scripts, and the exit code for both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from streamrec.observe.checks import Component, StackStatus

EXIT_OK = 0
EXIT_DOWN = 1  # something is down: the table says what
EXIT_LAGGING = 2  # everything is up but lag exceeds --max-lag


def exit_code(status: StackStatus, max_lag: int | None = None) -> int:
    if not status.ok:
        return EXIT_DOWN
    if max_lag is not None and status.broker.total_lag > max_lag:
        return EXIT_LAGGING
    return EXIT_OK


def to_json(status: StackStatus) -> dict[str, Any]:
    broker = status.broker
    components = {c.name: {"ok": c.ok, "state": c.state, "summary": c.summary, **c.details} for c in status.components}
    return {
        "ok": status.ok,
        "checked_ms": status.checked_ms,
        "components": components,
        "lag": {
            "group": broker.group,
            "group_state": broker.group_state,
            "members": broker.members,
            "total": broker.total_lag,
            "partitions": [asdict(p) for p in broker.partitions],
        },
        "dead_letters": broker.dead_letters,
        "notes": broker.notes,
    }


def render_table(status: StackStatus) -> str:
    lines = _columns([("COMPONENT", "STATE", "SUMMARY")] + [(c.name, _state(c), c.summary) for c in status.components])
    owners = _owners(status)
    if status.broker.partitions:
        rows = [("PARTITION", "COMMITTED", "END", "LAG", "WORKER")]
        rows += [
            (
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.end),
                str(p.lag),
                owners.get(p.partition, "-"),
            )
            for p in status.broker.partitions
        ]
        lines += ["", *_columns(rows)]
    lines += _worker_lines(status) + _scorer_lines(status)
    if status.broker.dead_letters is not None:
        lines.append(f"dead letters: {status.broker.dead_letters}")
    lines += [f"note: {note}" for note in status.broker.notes]
    lines += ["", "status: " + _verdict(status)]
    return "\n".join(lines)


def _state(component: Component) -> str:
    return component.state if component.state == "up" else component.state.upper()


def _verdict(status: StackStatus) -> str:
    down = [c.name for c in status.components if not c.ok]
    degraded = [c.name for c in status.components if c.ok and c.state != "up"]
    if down:
        return "DOWN: " + ", ".join(down)
    return "DEGRADED: " + ", ".join(degraded) if degraded else "all up"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _component(status: StackStatus, name: str) -> Component | None:
    return next((c for c in status.components if c.name == name), None)


def _owners(status: StackStatus) -> dict[int, str]:
    workers = _component(status, "workers")
    if workers is None:
        return {}
    return {p: str(w["id"]) for w in workers.details.get("workers", []) for p in w["partitions"]}


def _worker_lines(status: StackStatus) -> list[str]:
    workers = _component(status, "workers")
    if workers is None or not workers.details.get("workers"):
        return []
    out = [""]
    members = workers.details.get("members", [])
    for m in members:  # the workers a stack file lists, by name
        beat = "no heartbeat" if m["heartbeat"] is None else f"partitions {m['partitions']}"
        metrics = f"metrics {m['metrics']} {'up' if m['metrics_up'] else 'DOWN'}" if m["metrics"] else ""
        out.append(f"{m['name']}: pid {m['pid']}, {beat}, {metrics}, restarts {m['restarts']}")
    listed = {m["heartbeat"] for m in members}
    for w in workers.details["workers"]:
        if w["id"] in listed:
            continue
        beat = f"{w['age_ms'] / 1000:.1f}s ago"
        out.append(f"worker {w['id']}: pid {w['pid']}, partitions {w['partitions']}, beat {beat}")
    if not members:
        for endpoint, up in workers.details.get("metrics", {}).items():
            out.append(f"worker metrics {endpoint}: {'up' if up else 'DOWN'}")
    return out


def _scorer_lines(status: StackStatus) -> list[str]:
    out = []
    for scorer in (c for c in status.components if c.name.startswith("scorer")):
        d = scorer.details
        if "model_version" not in d:
            continue
        process = f"pid {d['pid']}, restarts {d['restarts']}, " if "pid" in d else ""
        out += [
            "",
            f"{scorer.name} {d['address']}: {process}{d['health']}, model {d['model_version']} ({d['model_type']}), "
            f"providers {', '.join(d['providers'])}, redis_ok {d['redis_ok']}, "
            f"in flight {d['in_flight']}/{d['max_in_flight']}, up {d['uptime_s']:.0f}s",
        ]
        out += [f"{scorer.name} metrics {e}: {'up' if up else 'DOWN'}" for e, up in d.get("metrics", {}).items()]
    return out
