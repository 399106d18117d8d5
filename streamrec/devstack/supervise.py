"""Keep a running stack's workers and scorers up: restart one that dies, with backoff; the broker or Redis dying
ends the stack.

A worker or scorer that exits (a crash, an out-of-memory kill, kill -9) is started again with the same command
line and environment after a delay that begins at `FIRST_DELAY_S` and doubles up to `MAX_DELAY_S`; once a
process has run for `STEADY_AFTER_S` its next failure starts from the first delay again. Nothing is lost
meanwhile: a worker's partitions go to the others (or wait in Kafka), and clients spread over the scorers skip a
dead one. The broker and a single Redis are not restarted here: they hold the stack's data, and a stack without
them cannot serve, so their exit is reported as fatal and the supervisor stops everything. The nodes of a Redis
Cluster are restartable (`up` names them): a replica has taken over the dead one's slots, and the node rejoins.

`Supervisor.check()` is called from the supervisor's main thread: children are spawned with PR_SET_PDEATHSIG,
which fires when the *thread* that spawned them ends, so they must all come from the one thread that lives as
long as the stack.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from streamrec.devstack.localstack import LocalStack, Service

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
STEADY_AFTER_S = 30.0  # a process that ran this long before it died counts as healthy: backoff starts over


@dataclass
class Backoff:
    restarts: int = 0
    delay_s: float = FIRST_DELAY_S
    due: float | None = None  # time.monotonic() of the pending restart


class Fatal(Exception):
    """A service the stack cannot run without has exited; the message says which and how."""


def exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "is running"
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class Supervisor:
    """Restarts the services named in `restartable`; any other service's exit raises Fatal from `check`."""

    def __init__(
        self,
        stack: LocalStack,
        restartable: Collection[str],
        say: Callable[[str], None],
        on_restart: Callable[[Service, int], None] = lambda service, restarts: None,
    ) -> None:
        self.stack = stack
        self.restartable = set(restartable)
        self.say = say
        self.on_restart = on_restart
        self.backoff = {name: Backoff() for name in self.restartable}

    def check(self, now: float | None = None) -> None:
        """Notice exits, schedule restarts, start those that are due; raise Fatal for a service not restartable."""
        now = time.monotonic() if now is None else now
        for name, service in list(self.stack.services.items()):
            if service.alive():
                continue
            if name not in self.restartable:
                raise Fatal(
                    f"{name} (pid {service.process.pid}) {exit_description(service.process.returncode)}: the stack "
                    f"cannot run without it; stopping everything (its log: {service.log_path})"
                )
            self._restart_when_due(service, now)

    def _restart_when_due(self, service: Service, now: float) -> None:
        backoff = self.backoff[service.name]
        if backoff.due is None:  # just noticed
            if now - service.started_s >= STEADY_AFTER_S:
                backoff.delay_s = FIRST_DELAY_S
            backoff.due = now + backoff.delay_s
            self.say(
                f"{service.name} (pid {service.process.pid}) {exit_description(service.process.returncode)}; "
                f"restart {backoff.restarts + 1} in {backoff.delay_s:g}s (log: {service.log_path})"
            )
            return
        if now < backoff.due:
            return
        backoff.restarts += 1
        backoff.due = None
        backoff.delay_s = min(MAX_DELAY_S, backoff.delay_s * 2)
        restarted = self.stack.respawn(service.name)
        self.on_restart(restarted, backoff.restarts)
