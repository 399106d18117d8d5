"""Several load-generator processes sharing one start time, each with its share of the rate; results merged.

One Python process tops out at a few thousand gRPC calls a second (and less on a busy machine), so the
offered rate is split over `processes` spawned children. Each connects first and reports ready; the parent
then hands all of them the same start time, so their schedules interleave as one (child i is offset by
i / rate). Their HDR histograms come back encoded and are merged by adding counts, which is exact.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from hdrh.histogram import HdrHistogram

from streamrec.errors import StackError
from streamrec.loadtest.histograms import Timeline, merge, new_histogram, summary_ms
from streamrec.loadtest.loadgen import LoadConfig, LoadResult, PagePlan, run_generator

READY_TIMEOUT_S = 60.0


def _child(conn: Connection, config: LoadConfig, plan: PagePlan) -> None:
    def start_at() -> float:
        conn.send("ready")
        return float(conn.recv())

    try:
        conn.send(("ok", run_generator(config, plan, start_at)))
    except Exception as exc:  # reported to the parent, which raises it as a StackError with this text
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass
class FleetResult:
    processes: int
    latency: HdrHistogram = field(default_factory=new_histogram)
    send_lag: HdrHistogram = field(default_factory=new_histogram)
    codes: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    timeline: Timeline = field(default_factory=Timeline)

    @classmethod
    def merged(cls, results: list[LoadResult]) -> FleetResult:
        out = cls(processes=len(results))
        out.latency = merge([r.latency for r in results])
        out.send_lag = merge([r.send_lag for r in results])
        for r in results:
            out.codes.update(r.codes)
            out.unfinished += r.unfinished
            out.timeline.add_encoded(r.timeline)
        return out

    def summary(self, measured_s: float) -> dict[str, Any]:
        calls = sum(self.codes.values())  # unfinished calls are in there as UNFINISHED
        errors = calls - self.codes.get("OK", 0)
        return {
            "processes": self.processes,
            "calls": calls,
            "ok": self.codes.get("OK", 0),
            "errors": errors,
            "error_rate": round(errors / calls, 6) if calls else 0.0,
            "unfinished": self.unfinished,
            "codes": dict(sorted(self.codes.items())),
            "ok_per_s": round(self.codes.get("OK", 0) / measured_s, 1) if measured_s > 0 else 0.0,
            "latency": summary_ms(self.latency),
            "send_lag": summary_ms(self.send_lag),
        }


class Fleet:
    """`start()` spawns and connects, `go(t)` starts all at wall time t, `collect()` waits and merges."""

    def __init__(self, config: LoadConfig, plan: PagePlan, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        share = config.rate / processes
        self.configs = [
            dataclasses.replace(config, rate=share, phase_s=i / config.rate, seed=config.seed + i)
            for i in range(processes)
        ]
        self.plan = plan
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> Fleet:
        ctx = multiprocessing.get_context("spawn")  # no fork: the parent holds threads and gRPC/Kafka state
        for n, config in enumerate(self.configs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, config, self.plan), name=f"loadgen-{n}", daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for n, conn in enumerate(self.conns):
            message = self._receive(conn, n, timeout_s)
            if message != "ready":
                self.close()
                raise StackError(f"load generator {n} failed to start: {message[1]}")
        return self

    def pids(self) -> dict[str, int]:
        return {proc.name: proc.pid for proc in self.procs if proc.pid is not None}

    def go(self, start_wall: float) -> None:
        for conn in self.conns:
            conn.send(start_wall)

    def collect(self, timeout_s: float) -> FleetResult:
        results = []
        try:
            for n, conn in enumerate(self.conns):
                status, payload = self._receive(conn, n, timeout_s)
                if status != "ok":
                    raise StackError(f"load generator {n} failed: {payload}")
                results.append(payload)
        finally:
            self.close()
        return FleetResult.merged(results)

    def _receive(self, conn: Connection, n: int, timeout_s: float) -> Any:
        if not conn.poll(timeout_s):
            self.close()
            raise StackError(f"load generator {n} did not answer within {timeout_s:.0f} s")
        try:
            return conn.recv()
        except EOFError:
            self.close()
            raise StackError(f"load generator {n} exited (code {self.procs[n].exitcode})") from None

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
