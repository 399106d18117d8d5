"""When each replayed event is due: a fixed rate or the original pace sped up, repeated to fill a duration.

Pure arithmetic over canonical events, so the pacing rules are tested without a broker. A repeated pass gets
`~N` appended to its session and event ids, so its sessions are new sessions to the worker (the same ids
again would be dropped as duplicates), and a run tag does the same for a whole run against a long-lived stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from streamrec.errors import ConfigError
from streamrec.events import CanonicalEvent


@dataclass(frozen=True)
class Pace:
    """`rate` events/s, or the original inter-event times divided by `speedup`; neither = as fast as possible."""

    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.speedup is not None:
            raise ConfigError("give a rate or a speed-up, not both")
        if (self.rate is not None and self.rate <= 0) or (self.speedup is not None and self.speedup <= 0):
            raise ConfigError("rate and speed-up must be positive")

    @property
    def paced(self) -> bool:
        return self.rate is not None or self.speedup is not None

    def describe(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g} events/s"
        if self.speedup is not None:
            return f"original pace x {self.speedup:g}"
        return "as fast as possible"


@dataclass(frozen=True)
class Planned:
    offset_s: float  # due time, seconds after the replay starts
    event: CanonicalEvent


def plan(
    events: Sequence[CanonicalEvent],
    pace: Pace,
    *,
    limit: int | None = None,
    duration_s: float | None = None,
    repeat: bool = False,
    tag: str = "",
) -> Iterator[Planned]:
    """Yield the events with their due times, in order, until `limit` events or `duration_s` seconds.

    With `repeat`, the data start over (ids suffixed `~1`, `~2`, ...) until the limit or duration is reached.
    """
    if not events:
        return
    if repeat and limit is None and (duration_s is None or not pace.paced):
        raise ConfigError("repeating the data needs a limit, or a duration with a rate or speed-up")
    period = _pass_period(events, pace)
    n = 0
    passes = 0
    while True:
        for index, event in enumerate(events):
            if limit is not None and n >= limit:
                return
            offset = _offset(events, pace, index, n, passes * period)
            if duration_s is not None and pace.paced and offset >= duration_s:
                return
            yield Planned(offset, _renamed(event, passes, tag))
            n += 1
        passes += 1
        if not repeat:
            return


def _offset(events: Sequence[CanonicalEvent], pace: Pace, index: int, n: int, pass_start_s: float) -> float:
    if pace.rate is not None:
        return n / pace.rate
    if pace.speedup is not None:
        return pass_start_s + (events[index].ts_ms - events[0].ts_ms) / 1000.0 / pace.speedup
    return 0.0


def _pass_period(events: Sequence[CanonicalEvent], pace: Pace) -> float:
    """How long one pass lasts at a speed-up, plus one mean gap so a pass does not start on the last event."""
    if pace.speedup is None:
        return 0.0
    span_s = (events[-1].ts_ms - events[0].ts_ms) / 1000.0
    mean_gap = span_s / max(1, len(events) - 1)
    return (span_s + mean_gap) / pace.speedup


def _renamed(event: CanonicalEvent, passes: int, tag: str) -> CanonicalEvent:
    suffix = (f"~{passes}" if passes else "") + (f"~{tag}" if tag else "")
    if not suffix:
        return event
    return dataclasses.replace(event, session_id=event.session_id + suffix, event_id=event.event_id + suffix)


def count_sessions(planned: Sequence[Planned]) -> int:
    return len({p.event.session_id for p in planned})
