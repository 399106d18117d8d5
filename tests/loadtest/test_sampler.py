"""Which replayed events the freshness probes get: the sampling rate, the warm-up, the session rules, the cap."""

from __future__ import annotations

from typing import Any

from streamrec.events import CanonicalEvent
from streamrec.loadtest.runner import Sampler


class _Probe:
    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.later: list[tuple[str, str]] = []

    def sent(self, session_id: str, event_id: str) -> None:
        self.pending.setdefault(session_id, event_id)

    def followed(self, session_id: str, event_id: str) -> None:
        self.later.append((session_id, event_id))


def _sampler(**kwargs: Any) -> tuple[Sampler, _Probe, _Probe]:
    redis, rec = _Probe(), _Probe()
    settings = {"every": 2, "quiet_s": 0.0, "warmup_s": 0.0, "start": 0.0} | kwargs
    return Sampler(redis=redis, rec=rec, **settings), redis, rec  # type: ignore[arg-type]


def _send(sampler: Sampler, sessions: list[str]) -> None:
    for n, session in enumerate(sessions):
        sampler.on_sent(CanonicalEvent(f"e{n}", "click", session, "", "i", 0), n)


def test_first_events_only_by_default_and_both_probes_get_the_same_tags() -> None:
    sampler, redis, rec = _sampler()
    _send(sampler, ["a", "a", "a", "b", "c", "c"])  # samples wanted at 0, 2, 4: "a"@0, then b@3, c@4
    assert redis.pending == rec.pending == {"a": "e0", "b": "e3", "c": "e4"}
    assert sampler.tagged == 3 and ("a", "e1") in redis.later


def test_quiet_mode_also_tags_events_of_quiet_sessions() -> None:
    sampler, redis, _ = _sampler(quiet_only_first=False)
    _send(sampler, ["a", "b", "a", "b"])
    assert redis.pending == {"a": "e0", "b": "e3"}  # a@2 is skipped (a is probed already); b@3 had its quiet 0 s


def test_the_pending_cap_defers_tags_and_counts_them() -> None:
    sampler, redis, _ = _sampler(every=1, max_pending=2)
    _send(sampler, ["a", "b", "c", "d"])
    assert list(redis.pending) == ["a", "b"] and sampler.tagged == 2 and sampler.deferred == 1


def test_nothing_is_tagged_in_the_warm_up() -> None:
    sampler, redis, _ = _sampler(warmup_s=3600.0, start=10**9)
    _send(sampler, ["a", "b"])
    assert redis.pending == {} and sampler.tagged == 0
