"""CPU time of each process of a run and of the whole machine, from Linux /proc, over the measured window.

On a shared machine a load test's figures mean little without knowing who had the CPU: this says how many
cores the scorer, the worker, the broker, Redis and the load tester itself used, and how many everything
else on the machine took meanwhile. Elsewhere than Linux the figures are simply absent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid` (all its threads); None when it is gone or /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; fields follow its ')'
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime (fields 14 and 15 of stat)


def machine_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_PER_S


class CpuMeter:
    """`start()` and `stop()` around the measured window; `stop` returns cores used per process and in total."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.before: dict[str, float | None] = {}
        self.machine_before: float | None = None
        self.started = 0.0

    def start(self) -> CpuMeter:
        self.before = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_s()
        self.started = time.perf_counter()
        return self

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        cores: dict[str, float] = {}
        for name, pid in self.pids.items():
            now, then = process_cpu_s(pid), self.before.get(name)
            if now is not None and then is not None and wall > 0:
                cores[name] = round((now - then) / wall, 3)
        out: dict[str, Any] = {"window_s": round(wall, 2), "cores": cores, "cpus": os.cpu_count()}
        machine_now = machine_busy_s()
        if machine_now is not None and self.machine_before is not None and wall > 0:
            busy = (machine_now - self.machine_before) / wall
            out["machine_busy_cores"] = round(busy, 3)
            out["others_cores"] = round(max(0.0, busy - sum(cores.values())), 3)
        return out
