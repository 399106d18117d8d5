"""Freshness as a storefront sees it: from producing an event until `Recommend` answers from state that has it.

`Recommend` does not name the event its answer came from, but it says how old the session state behind it
is (`state_age_ms`, measured on the scorer against the time the worker wrote the state). So an answer
reflects our event once the state it came from was written after the event was sent:

    (request sent, wall ms) - state_age_ms >= (event sent, wall ms)

The request's send time is earlier than the scorer's clock reading, so the test errs on the late side, never
early. It is unambiguous only when no earlier event of the session is still in flight; the replay therefore
tags an event only when its session has been quiet for a while (`quiet_s` in the scenario). A background
thread polls pending sessions with concurrent calls, each again after `poll_s` or `relative_step` of its
age, whichever is longer, and never more than `max_calls_per_s` calls a second in all (so an overloaded
stack is not also flooded by its own probe); `source` at the moment of visibility is counted.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import grpc

from streamrec.channels import insecure_scorer_channel
from streamrec.loadtest.freshness import FreshnessReport
from streamrec.loadtest.probe_thread import ProbeThread
from streamrec.protos import recommender_pb2, recommender_pb2_grpc
from streamrec.security import Metadata

GIVE_UP_S = 60.0  # a probe unanswered this long is counted missing and no longer polled


@dataclass
class _Pending:
    sent_perf: float
    sent_wall_ms: int
    due: float = 0.0  # next poll (perf_counter)


class RecommendProbe(ProbeThread[_Pending]):
    def __init__(
        self,
        address: str,
        poll_s: float = 0.005,
        k: int = 10,
        rpc_timeout_s: float = 1.0,
        relative_step: float = 0.05,
        max_calls_per_s: float = 100.0,
        metadata: Metadata = (),
    ) -> None:
        super().__init__("recommend-probe")
        self.metadata = metadata
        self.channel = insecure_scorer_channel(address)  # one scorer or several (stack.json's list)
        self.stub = recommender_pb2_grpc.RecommenderStub(self.channel)
        self.poll_s = poll_s
        self.relative_step = relative_step
        self.max_calls_per_s = max_calls_per_s
        self.k = k
        self.rpc_timeout_s = rpc_timeout_s
        self.report = FreshnessReport()
        self.sources: Counter[str] = Counter()
        self.calls = 0
        self.errors: Counter[str] = Counter()

    def start(self) -> RecommendProbe:
        self._start_thread()
        return self

    def sent(self, session_id: str, event_id: str) -> None:
        """The event was just handed to Kafka (event_id is not visible through Recommend; the time is what counts)."""
        with self._lock:
            if session_id not in self.pending:
                self.pending[session_id] = _Pending(time.perf_counter(), int(time.time() * 1000))
        self._wake_up()

    def _run(self) -> None:
        tokens, refilled = 0.0, time.perf_counter()  # a token bucket of Recommend calls: max_calls_per_s
        burst = max(1.0, self.max_calls_per_s * 0.05)
        while not self._stop.is_set():
            now = time.perf_counter()
            tokens, refilled = min(burst, tokens + (now - refilled) * self.max_calls_per_s), now
            with self._lock:  # the longest-waiting first, as many as the budget allows
                due = sorted((p.due, sid) for sid, p in self.pending.items() if p.due <= now)[: int(tokens)]
                sessions = [(sid, self.pending[sid]) for _, sid in due]
            if sessions:
                tokens -= len(sessions)
                self._poll(sessions)
            self._sleep(max(0.0, (1.0 - tokens) / self.max_calls_per_s))

    def _sleep(self, for_budget_s: float) -> None:
        """Until the next poll is due and the budget allows one; a new probe (`sent`) wakes the thread at once."""
        with self._lock:
            next_due = min((p.due for p in self.pending.values()), default=float("inf"))
        self._wait_for_next(next_due, max(for_budget_s, 0.0005))

    def _poll(self, sessions: list[tuple[str, _Pending]]) -> None:
        asked_ms = int(time.time() * 1000)
        calls = [
            self.stub.Recommend.future(
                recommender_pb2.RecommendRequest(session_id=sid, k=self.k),
                timeout=self.rpc_timeout_s,
                metadata=self.metadata,
            )
            for sid, _ in sessions
        ]
        for (sid, pending), call in zip(sessions, calls, strict=True):
            self.calls += 1
            try:
                reply = call.result()
            except grpc.RpcError as exc:  # the client edge: count it, the next poll asks again
                self.errors[exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"] += 1
                continue
            now = time.perf_counter()
            if reply.state_age_ms >= 0 and asked_ms - reply.state_age_ms >= pending.sent_wall_ms:
                self._visible(sid, now, reply.source)
            elif now - pending.sent_perf > GIVE_UP_S:
                with self._lock:
                    self.pending.pop(sid, None)
                    self.report.missing += 1
            else:
                pending.due = now + max(self.poll_s, self.relative_step * (now - pending.sent_perf))

    def _visible(self, session_id: str, now: float, source: str) -> None:
        with self._lock:
            pending = self.pending.pop(session_id, None)
            if pending is not None:
                self.report.latencies_ms.append((now - pending.sent_perf) * 1000)
                self.report.sent_at.append(pending.sent_perf)
                self.sources[source] += 1

    def stop(self, drain_s: float = 5.0) -> FreshnessReport:
        if self._stop.is_set():  # stopped already: the report is final
            return self.report
        self._drain_and_join(drain_s)
        self.report.missing += len(self.pending)
        self.channel.close()
        return self.report
