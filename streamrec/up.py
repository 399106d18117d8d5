"""`streamrec up` in the foreground or detached, and `streamrec down`: one supervisor process owns the stack and
restarts its workers and scorers when they die."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamrec.devstack.localstack import LocalStack, Service
from streamrec.devstack.stack import STACK_FILE, StackAddresses, StackOptions, describe_model, start_stack
from streamrec.devstack.supervise import Fatal, Supervisor
from streamrec.errors import StackError
from streamrec.signals import stop_on_signals

DETACH_TIMEOUT_S = 300.0  # first start may train a model
STOP_TIMEOUT_S = 30.0


def up_options(
    state_dir: Path, workers: int = 1, scorers: int = 1, fresh: bool = False, redis_cluster: int = 0
) -> StackOptions:
    """The stack `up` starts: its registry in `state_dir`, trained when empty on the real clickstream when
    ../shared/data has it, else on synthetic sessions (`train_on="auto"`), and the Feast repository applied.
    Its broker and Redis keep their data in `state_dir`, so the next `up` resumes them (`fresh`: starts empty);
    `redis_cluster` N > 0 runs a Redis Cluster of N primaries, each with a replica, instead of one Redis."""
    return StackOptions(
        registry=state_dir / "registry",
        train_on="auto",
        feast_apply=True,
        workers=workers,
        scorers=scorers,
        keep_data=True,
        fresh=fresh,
        redis_cluster=redis_cluster,
    )


def refuse_if_running(state_dir: Path) -> None:
    """A StackError when a supervisor named in `state_dir`/stack.json still runs; a stale file (its supervisor
    was killed) is removed: its children died with it."""
    stack_file = state_dir / STACK_FILE
    if not stack_file.exists():
        return
    try:
        pid = StackAddresses.read(state_dir).pid
    except (ValueError, TypeError, KeyError):
        pid = 0
    if pid and _alive(pid):
        raise StackError(
            f"{stack_file} names a running stack (supervisor pid {pid}): stop it first (streamrec down --state-dir "
            f"{state_dir})"
        )
    stack_file.unlink(missing_ok=True)


def say(message: str) -> None:
    print(f"streamrec up: {message}", file=sys.stderr, flush=True)


def run_foreground(state_dir: Path, options: StackOptions | None = None) -> int:
    """Start the stack, write stack.json, and keep it up until SIGTERM/Ctrl-C or the broker or Redis dies;
    a worker or scorer that dies is restarted (streamrec.devstack.supervise)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    refuse_if_running(state_dir)
    options = options or up_options(state_dir)
    stop = stop_on_signals()
    with LocalStack(state_dir=state_dir) as stack:
        addresses = start_stack(stack, options)
        from streamrec.observe.web import start_stack_web  # the live page runs on a thread of this supervisor

        web = start_stack_web(addresses)
        addresses.web = web.url
        addresses.write(state_dir)
        print(json.dumps(addresses.summary()), flush=True)
        print(describe_members(addresses), flush=True)
        print(f"serving {describe_model(Path(addresses.registry))}", flush=True)

        def restarted(service: Service, restarts: int) -> None:
            addresses.restarted(service.name, service.process.pid)
            addresses.write(state_dir)
            say(f"{service.name} started again (pid {service.process.pid}, restart {restarts})")

        names = [m.name for m in addresses.members()]
        # a Redis Cluster node (redis-PORT) comes back on its port and data dir and rejoins: its replica has
        # taken over meanwhile; one Redis ("redis") holds all the data and is not restarted behind its clients
        names += [name for name in stack.services if name.startswith("redis-")]
        supervisor = Supervisor(stack, names, say, restarted)
        try:
            while not stop.wait(0.2):
                supervisor.check()
        except Fatal as exc:
            say(str(exc))
            return 1
        finally:
            web.stop()
            with contextlib.suppress(FileNotFoundError):
                (state_dir / STACK_FILE).unlink()
    return 0


def run_detached(state_dir: Path, options: StackOptions) -> int:
    """Start `streamrec up` as a background supervisor and return once its stack.json is written."""
    state_dir.mkdir(parents=True, exist_ok=True)
    refuse_if_running(state_dir)
    stack_file = state_dir / STACK_FILE
    log_path = state_dir / "up.log"
    argv = [sys.executable, "-m", "streamrec.cli", "up", "--state-dir", str(state_dir)]
    argv += ["--workers", str(options.workers), "--scorers", str(options.scorers)]
    argv += ["--redis-cluster", str(options.redis_cluster), *(["--fresh"] if options.fresh else [])]
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + DETACH_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack_file.exists():
            addresses = StackAddresses.read(state_dir)
            print(json.dumps(addresses.summary()))
            print(describe_members(addresses))
            print(f"serving {describe_model(Path(addresses.registry))}")
            print(f"live page {addresses.web}/ and storefront {addresses.web}/store")
            print(f"stack running (supervisor pid {supervisor.pid}); stop it: streamrec down --state-dir {state_dir}")
            return 0
        if supervisor.poll() is not None:
            raise StackError(f"the stack failed to start; see {log_path}:\n{_tail(log_path)}")
        time.sleep(0.2)
    supervisor.terminate()
    raise StackError(f"the stack did not start within {DETACH_TIMEOUT_S:.0f}s; see {log_path}")


def describe_members(addresses: StackAddresses) -> str:
    """One line naming each worker and scorer with its pid (and a scorer's address)."""
    workers = ", ".join(f"{w.name} (pid {w.pid})" for w in addresses.workers)
    scorers = ", ".join(f"{s.name} {s.address} (pid {s.pid})" for s in addresses.scorers)
    return f"workers: {workers}; scorers: {scorers}"


def stop_detached(state_dir: Path) -> int:
    """Stop the supervisor named in stack.json and make sure none of its processes survive."""
    if not (state_dir / STACK_FILE).exists():
        print(f"no stack running in {state_dir}")
        return 0
    addresses = StackAddresses.read(state_dir)
    pids = [addresses.pid, *addresses.processes.values()]
    _signal(addresses.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    survivors = [p for p in pids if _alive(p)]
    for pid in survivors:
        _signal(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STACK_FILE).unlink()
    print(f"stack stopped{f' ({len(survivors)} killed after {STOP_TIMEOUT_S:.0f}s)' if survivors else ''}")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
