"""`streamrec up`'s supervision with real processes (`sleep`): a killed worker comes back after a growing delay,
a process that ran long enough starts the backoff over, and the broker or Redis exiting is fatal."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack, Service
from streamrec.devstack.supervise import FIRST_DELAY_S, STEADY_AFTER_S, Fatal, Supervisor, exit_description


def kill(service: Service, sig: int = signal.SIGKILL) -> None:
    os.kill(service.process.pid, sig)
    service.process.wait(10)


def test_a_killed_worker_is_restarted_with_backoff_and_redis_exiting_is_fatal(tmp_path: Path) -> None:
    said: list[str] = []
    restarts: list[tuple[str, int, int]] = []
    with LocalStack(state_dir=tmp_path) as stack:
        for name in ("redis", "worker"):
            stack.spawn(name, ["sleep", "300"], "-", ready=None, env={"STREAMREC_MARK": name})
        supervisor = Supervisor(
            stack, ["worker"], said.append, lambda s, n: restarts.append((s.name, s.process.pid, n))
        )
        first = stack.services["worker"]
        supervisor.check()
        assert said == [] and restarts == []  # all alive: nothing to do

        kill(first)
        now = first.started_s + 1.0  # a crash soon after the start
        supervisor.check(now)
        assert said == [
            f"worker (pid {first.process.pid}) was killed by SIGKILL; restart 1 in 0.5s "
            f"(log: {tmp_path / 'worker.log'})"
        ]
        assert restarts == [] and not stack.services["worker"].alive()  # not before its delay
        supervisor.check(now + FIRST_DELAY_S)
        second = stack.services["worker"]
        assert second.alive() and second.process.pid != first.process.pid
        assert restarts == [("worker", second.process.pid, 1)]
        assert second.argv == first.argv and second.env == {"STREAMREC_MARK": "worker"}

        kill(second)  # again at once: the delay doubles
        supervisor.check(second.started_s + 0.1)
        assert said[-1].endswith(f"restart 2 in {2 * FIRST_DELAY_S:g}s (log: {tmp_path / 'worker.log'})")
        supervisor.check(second.started_s + 0.1 + 2 * FIRST_DELAY_S)
        third = stack.services["worker"]
        assert third.alive() and restarts[-1] == ("worker", third.process.pid, 2)

        kill(third, signal.SIGTERM)  # after a steady run: back to the first delay
        supervisor.check(third.started_s + STEADY_AFTER_S + 1)
        assert said[-1].startswith(f"worker (pid {third.process.pid}) was killed by SIGTERM; restart 3 in 0.5s")

        redis = stack.services["redis"]
        kill(redis)
        with pytest.raises(
            Fatal,
            match=rf"redis \(pid {redis.process.pid}\) was killed by SIGKILL: the stack "
            "cannot run without it",
        ):
            supervisor.check()


def test_exit_descriptions() -> None:
    assert exit_description(3) == "exited with code 3"
    assert exit_description(-9) == "was killed by SIGKILL"
    assert exit_description(None) == "is running"
