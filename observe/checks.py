"""Check each part of a running stack (broker, Redis, workers, scorer) and gather the answers into one status."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from streamrec.channels import scorer_addresses
from streamrec.devstack.stack import Member
from streamrec.observe import scrape
from streamrec.observe.config import Targets, redact, with_current_members
from streamrec.observe.kafka_lag import BrokerReport, check_broker
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import ClusterTarget, is_cluster_url, sync_client

UP, DEGRADED, DOWN = "up", "degraded", "down"  # degraded: works, but something an operator should look at


@dataclass
class Component:
    name: str
    state: str  # UP, DEGRADED or DOWN
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state != DOWN


@dataclass
class StackStatus:
    components: list[Component]
    broker: BrokerReport
    checked_ms: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.components)


def check_redis(url: str, timeout_s: float, name: str = "redis") -> Component:
    client = sync_client(url, timeout_s)
    try:
        client.ping()
        memory: dict[str, Any] = client.info("memory")  # type: ignore[assignment]  # sync client: a dict
        server: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        details = {
            "version": server.get("redis_version"),
            "used_memory": memory.get("used_memory"),
            "used_memory_human": memory.get("used_memory_human"),
            "maxmemory": memory.get("maxmemory"),
            "keys": client.dbsize(),
        }
    except redis.RedisError as exc:
        return Component(name, DOWN, f"down: {exc}", {"url": redact(url)})
    finally:
        client.close()
    return Component(
        name, UP, f"up, {details['used_memory_human']} used, {details['keys']} keys", {"url": redact(url), **details}
    )


def heartbeats(url: str, project: str, timeout_s: float) -> list[dict[str, Any]]:
    """The live workers' heartbeats (`{project}:workers:{host}-{pid}`, TTL 3 s): id, pid, partitions, age."""
    client = sync_client(url, timeout_s)
    try:
        keys = sorted(client.scan_iter(match=f"{project}:workers:*", count=100))
        values: list[bytes | None] = client.mget(keys) if keys else []  # type: ignore[assignment]
    finally:
        client.close()
    now = int(time.time() * 1000)
    found = []
    for key, raw in zip(keys, values, strict=True):
        if raw:  # expired between SCAN and MGET: that worker is gone
            beat = json.loads(raw)
            age_ms = now - int(beat.get("at_ms", now))
            found.append(
                {
                    "id": key.decode().rsplit(":", 1)[-1],
                    "pid": beat.get("pid"),
                    "partitions": beat.get("partitions", []),
                    "age_ms": age_ms,
                }
            )
    return found


def check_workers(targets: Targets, partitions: int, timeout_s: float) -> Component:
    """Up when at least one worker beats and, together, they own every partition of the events topic."""
    try:
        workers = heartbeats(targets.redis, targets.project, timeout_s)
    except redis.RedisError as exc:
        return Component("workers", DOWN, f"unknown (Redis: {exc})")
    metrics = {endpoint: _metrics_up(endpoint, timeout_s) for endpoint in targets.worker_metrics}
    owned = {p for w in workers for p in w["partitions"]}
    unowned = sorted(set(range(partitions)) - owned)
    members = [_worker_member(m, workers, metrics) for m in targets.workers]
    details = {"workers": workers, "unassigned_partitions": unowned, "metrics": metrics, "members": members}
    if not workers:
        return Component("workers", DOWN, "down: no worker heartbeat", details)
    silent = [e for e, up in metrics.items() if not up]
    quiet = [f"{m['name']} (pid {m['pid']})" for m in members if m["heartbeat"] is None]
    # an unowned partition's events wait unprocessed (down); a silent /metrics only blinds the dashboards, and a
    # listed worker without a heartbeat is being restarted by `up` while the others own its partitions
    state = DOWN if unowned else DEGRADED if silent or quiet else UP
    summary = f"{len(workers)} up, partitions " + ("all assigned" if not unowned else f"{unowned} unassigned")
    if quiet:
        summary += f", no heartbeat from {', '.join(quiet)}"
    if silent:
        summary += f", metrics down at {', '.join(silent)}"
    return Component("workers", state, summary, details)


def _worker_member(member: Member, beats: list[dict[str, Any]], metrics: dict[str, bool]) -> dict[str, Any]:
    """One worker the stack file lists, with its heartbeat (matched by pid) and its /metrics' answer."""
    beat = next((b for b in beats if b["pid"] == member.pid), None)
    return {
        "name": member.name,
        "pid": member.pid,
        "restarts": member.restarts,
        "heartbeat": None if beat is None else beat["id"],
        "partitions": [] if beat is None else beat["partitions"],
        "metrics": member.metrics,
        "metrics_up": metrics.get(member.metrics),
    }


def check_scorer(targets: Targets, address: str, timeout_s: float) -> Component:
    """Up when grpc.health.v1 says SERVING and Info answers; Info refused for want of a token is degraded."""
    member = next((m for m in targets.scorers if m.address == address), None)
    name = member.name if member else "scorer" if address == targets.grpc else f"scorer {address}"
    endpoints = [member.metrics] if member and member.metrics else targets.scorer_metrics
    details: dict[str, Any] = {"address": address, "metrics": {e: _metrics_up(e, timeout_s) for e in endpoints}}
    if member:
        details |= {"pid": member.pid, "restarts": member.restarts}
    with targets.credentials.channel(address) as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:  # the client edge: the one place we catch it
            return Component(name, DOWN, f"down: {exc.code().name}", details)
        details["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            return Component(name, DOWN, f"down: {details['health']}", details)
        try:
            info = recommender_pb2_grpc.RecommenderStub(channel).Info(
                pb.InfoRequest(), timeout=timeout_s, metadata=targets.credentials.grpc_metadata()
            )
        except grpc.RpcError as exc:
            hint = (
                " (set STREAMREC_OBSERVE_SCORER_TOKEN to a token with the admin scope)"
                if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                else ""
            )
            return Component(name, DEGRADED, f"serving, but Info failed: {exc.code().name}{hint}", details)
    details |= {
        "model_version": info.model_version,
        "model_type": info.model_type,
        "providers": list(info.providers),
        "redis_ok": info.redis_ok,
        "trending_from_stream": info.trending_from_stream,
        "in_flight": info.in_flight,
        "max_in_flight": info.max_in_flight,
        "uptime_s": round(info.uptime_s, 1),
    }
    # without Redis the scorer still answers (from its snapshot, or popularity): degraded, not down
    problems = [] if info.redis_ok else ["cannot read Redis"]
    problems += [f"metrics down at {e}" for e, up in details["metrics"].items() if not up]
    head = f"model {info.model_version} on {','.join(info.providers) or '?'}"
    summary = head + (f" ({'; '.join(problems)})" if problems else "")
    return Component(name, DEGRADED if problems else UP, summary, details)


def broker_component(report: BrokerReport) -> Component:
    if not report.ok:
        return Component("broker", DOWN, report.error)
    lag = f"lag {report.total_lag}" if report.partitions else "lag unknown"
    members = f"{report.members} members"
    summary = f"{report.brokers} broker(s), group {report.group_state} ({members}), {lag}"
    return Component("broker", UP, summary)


def collect(targets: Targets, timeout_s: float = 3.0) -> StackStatus:
    """Every check at once (each waits on the network, so in threads): the slowest one sets the time taken."""
    targets = with_current_members(targets)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="status") as pool:
        broker = pool.submit(
            check_broker, targets.kafka, targets.topic, targets.group, timeout_s, targets.credentials.kafka_config()
        )
        whole = check_redis_cluster if is_cluster_url(targets.redis) else check_redis
        redis_checks = [pool.submit(whole, targets.redis, timeout_s)]
        redis_checks += [  # a Redis Cluster: each shard too, by the URL's scheme and credentials
            pool.submit(check_redis, shard_url(targets.redis, node), timeout_s, f"redis {node}")
            for node in targets.redis_cluster_nodes
        ]
        # several scorers may be named (host:port,host:port, as the worker accepts): each is checked
        scorers = [pool.submit(check_scorer, targets, a, timeout_s) for a in scorer_addresses(targets.grpc)]
        report = broker.result()
        partitions = len(report.partitions) or targets.partitions
        workers = check_workers(targets, partitions, timeout_s)
        components = [
            broker_component(report),
            *(r.result() for r in redis_checks),
            workers,
            *(s.result() for s in scorers),
        ]
    return StackStatus(components, report, int(time.time() * 1000))


def shard_url(url: str, node: str) -> str:
    """`url` (scheme, user, password) pointed at one shard's host:port (a plain redis:// URL for a cluster's)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    scheme = parts.scheme.removesuffix("+cluster")
    return urlunsplit((scheme, f"{auth}@{node}" if auth else node, "/0", parts.query, ""))


def check_redis_cluster(url: str, timeout_s: float) -> Component:
    """A Redis Cluster as a whole: its state and slot coverage as the first node that answers sees them."""
    target = ClusterTarget.from_url(url)
    failures = []
    for seed in target.seeds:
        client = sync_client(seed, timeout_s)
        try:
            info = client.execute_command("CLUSTER", "INFO").decode()
        except redis.RedisError as exc:
            failures.append(f"{seed.address}: {exc}")
            continue
        finally:
            client.close()
        fields = dict(line.split(":", 1) for line in info.strip().splitlines() if ":" in line)
        details = {
            "url": redact(url),
            **{k: fields.get(k) for k in ("cluster_state", "cluster_slots_ok", "cluster_size")},
        }
        if fields.get("cluster_state") != "ok":
            return Component("redis", DOWN, f"cluster {fields.get('cluster_state')}", details)
        summary = f"cluster ok, {fields.get('cluster_size')} primaries, {fields.get('cluster_slots_ok')} slots served"
        return Component("redis", UP, summary, details)
    return Component("redis", DOWN, f"down: no node answers ({'; '.join(failures)})", {"url": redact(url)})


def _metrics_up(endpoint: str, timeout_s: float) -> bool:
    try:
        scrape.fetch_text(endpoint, timeout_s)
    except OSError:
        return False
    return True
