"""The background thread both freshness probes run on: started once, woken by new probes, drained on stop."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

P = TypeVar("P")
IDLE_WAIT_S = 0.1  # with nothing due, look again this often (a new probe wakes the thread sooner)


class ProbeThread(Generic[P]):
    """Subclasses keep their probes in `pending` (guarded by `_lock`) and implement `_run`, which loops until
    `_stop` is set and waits with `_wait_for_next`."""

    def __init__(self, name: str) -> None:
        self.pending: dict[str, P] = {}  # session -> its probe
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _start_thread(self) -> None:
        self._thread.start()

    def _wake_up(self) -> None:
        self._wake.set()

    def _wait_for_next(self, next_due: float, at_least_s: float) -> None:
        """Until `next_due` (perf_counter) but at least `at_least_s` and at most IDLE_WAIT_S unless `at_least_s`
        is longer; a new probe wakes the thread at once."""
        wait = max(at_least_s, min(next_due - time.perf_counter(), IDLE_WAIT_S))
        if self._wake.wait(wait):
            self._wake.clear()

    def _drain_and_join(self, drain_s: float) -> None:
        """Give pending probes up to `drain_s` to be seen, then stop the thread."""
        deadline = time.monotonic() + drain_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._wake.set()
        self._thread.join()
