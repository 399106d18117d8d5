"""`streamrec serve --processes N`: N scorer processes on one port, restarted when they die, with one /metrics.

One Python process answers on one core (the GIL), so an edge node's other cores need more processes. They share
the port through SO_REUSEPORT, as in gRPC's multiprocessing example: the kernel spreads new connections over
them (serving/ports.py holds the port for the group and keeps strangers off it). A connection stays on the
process that accepted it, so clients spread their calls by opening several channels.

The parent loads no model and answers no call: it holds the port, starts the children, serves their metrics
summed into one view (prometheus_client's multiprocess mode, serving/metrics.py), and restarts a child that dies
with a backoff. A child that fails while the group starts ends the group with its exit code, since a setting
that is wrong in one child is wrong in all. SIGTERM or Ctrl-C drains every child (grace_s) and then stops.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.metrics_endpoint import serve_metrics
from streamrec.serving import ports
from streamrec.serving.config import ServingSettings
from streamrec.signals import stop_on_signals

log = logging.getLogger(__name__)

STARTUP_S = 30.0  # a child that exits before the group has run this long ends the group
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
STEADY_AFTER_S = 30.0  # a child that ran this long before it died starts its backoff over
POLL_S = 0.2
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    slot: int
    process: subprocess.Popen[bytes]
    started_s: float = field(default_factory=time.monotonic)
    delay_s: float = FIRST_DELAY_S
    restart_due: float | None = None
    restarts: int = 0


class ScorerGroup:
    """The children of one `serve --processes N`, on the port that `reservation` holds."""

    def __init__(self, settings: ServingSettings, port: int, metrics_dir: Path) -> None:
        self.settings = settings
        self.port = port
        self.metrics_dir = metrics_dir
        self.children: list[Child] = []
        self.started_s = time.monotonic()

    def child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMREC_SERVING_HOST": self.settings.host,
            "STREAMREC_SERVING_PORT": str(self.port),
            "STREAMREC_SERVING_REGISTRY": str(self.settings.registry),
            "STREAMREC_SERVING_PROCESSES": "1",
            "STREAMREC_SERVING_SHARED_PORT": "true",
            "STREAMREC_SERVING_METRICS_PORT": "0",  # the parent serves every child's metrics
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }

    def spawn(self, slot: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "serve"],
            env=self.child_env(),
            preexec_fn=_die_with_parent,  # a kill -9 of the parent takes its children with it
        )

    def start(self) -> None:
        self.children = [Child(slot, self.spawn(slot)) for slot in range(self.settings.processes)]
        pids = ", ".join(str(child.process.pid) for child in self.children)
        log.info("%d scorer processes on %s:%d (pids %s)", len(self.children), self.settings.host, self.port, pids)

    def check(self, now: float) -> int | None:
        """Restart children that died, when due; an exit code when the group must end (a child failed to start)."""
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_due is None:
                _forget_metrics(child.process.pid, self.metrics_dir)
                if now - self.started_s < STARTUP_S and child.restarts == 0 and code > 0:
                    log.error("scorer process %d exited with code %d while starting: stopping", child.process.pid, code)
                    return code
                if now - child.started_s >= STEADY_AFTER_S:
                    child.delay_s = FIRST_DELAY_S
                child.restart_due = now + child.delay_s
                log.warning(
                    "scorer process %d %s; restart %d in %gs",
                    child.process.pid,
                    _exit_description(code),
                    child.restarts + 1,
                    child.delay_s,
                )
            elif now >= child.restart_due:
                child.process = self.spawn(child.slot)
                child.started_s, child.restart_due = now, None
                child.restarts += 1
                child.delay_s = min(MAX_DELAY_S, child.delay_s * 2)
                log.info("scorer process %d started (restart %d)", child.process.pid, child.restarts)
        return None

    def stop(self) -> None:
        """SIGTERM to every child (each drains for grace_s), then SIGKILL to any still there."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_s + 5.0
        for child in self.children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("scorer process %d did not drain in time: killing it", child.process.pid)
                child.process.kill()
                child.process.wait()


def run_group(settings: ServingSettings) -> int:
    """Run `settings.processes` scorers on settings.host:port until SIGTERM/SIGINT; 0, or a child's start failure."""
    reservation = ports.reserve(settings.host, settings.port)  # ConfigError when the port is in use
    metrics_dir = Path(tempfile.mkdtemp(prefix="streamrec-scorer-metrics-"))
    try:
        if settings.metrics_port:
            _serve_group_metrics(settings.metrics_port, settings.metrics_host, metrics_dir)
        stop = stop_on_signals()
        group = ScorerGroup(settings, reservation.getsockname()[1], metrics_dir)
        group.start()
        code: int | None = None
        while code is None and not stop.wait(POLL_S):
            code = group.check(time.monotonic())
        log.info("stopping %d scorer processes", len(group.children))
        group.stop()
        return code or 0
    finally:
        reservation.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_group_metrics(port: int, host: str, metrics_dir: Path) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    serve_metrics(registry, port, host)


def _forget_metrics(pid: int, metrics_dir: Path) -> None:
    """Drop a dead child's live gauges (its counters and histograms stay in the sums, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(metrics_dir))


def _exit_description(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent's spawning thread ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
