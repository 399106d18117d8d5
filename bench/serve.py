"""`streamrec bench serve`: Recommend over gRPC on loopback, ours beside a bare echo server and a naive scorer.

One run: start a redis-server, seed N sessions (state for ours, Feast session features for the naive scorer),
then start three servers, each in its own process: the echo floor, ours (`streamrec.serving.server.create_server` with
its defaults), and the naive scorer (Feast SDK read + torch eager forward per request). The load comes from this
process over one grpc.aio channel per server: a single sequential client (p50, p99), then closed-loop
concurrency steps for the highest throughput whose p99 stays within 10 ms (bench/serve_load.py). The servers
are driven in alternating rounds, one at a time (the others sit idle in epoll meanwhile), so a change in the
machine's speed during the run falls on all three alike: measured one after the other, the echo floor alone
moved 20-30% between runs and every ratio with it. Sessions have no refreshed list at first, so ours runs the
model inline on every request; then every session's list is refreshed through ours' Score as the worker does
(serialized answers included), and a sequential run and a second step-up beside the echo floor measure the hot
path: a page view of a refreshed session (`refreshed_rps_over_echo`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from streamrec.artifact import NEURAL_MODEL_TYPES, Manifest, current_version, load_manifest, load_vocabulary
from streamrec.bench.common import bench_registry
from streamrec.bench.serve_data import Sessions, make_sessions, refresh_through_score, seed_sessions
from streamrec.bench.serve_load import Driver, Level, Run, max_rps_within, sequential_together, step_up_together
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import scorer_ready
from streamrec.errors import ConfigError
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving.runtime import PROVIDER_CHOICES, choose_providers

# -- settings (each is a keyword of run_serve) -------------------------------------------------------------------
SESSIONS = 10_000  # seeded sessions; requests pick among them at random
REQUESTS = 2_000  # sequential calls per server for p50/p99 (plus WARMUP unrecorded)
WARMUP = 200
LEVELS = (1, 2, 4, 8, 16, 32, 64, 128)  # closed-loop concurrency steps
LEVEL_SECONDS = 2.0  # recorded time per step and server (plus a short unrecorded warm-up per round)
SEQUENTIAL_ROUNDS = 4  # the sequential calls of each server come in this many alternating blocks
LEVEL_ROUNDS = 2  # and each load step in this many alternating windows
P99_LIMIT_MS = 10.0
K = 20
SEED = 0
START_TIMEOUT_S = 180.0  # the naive server imports torch and Feast and runs `feast apply`: slow on a busy machine


@dataclass(frozen=True)
class Plan:
    requests: int
    levels: tuple[int, ...]
    level_seconds: float
    p99_limit_ms: float


@dataclass(frozen=True)
class Figures:
    """What one server measured: the sequential run, the load steps, and its own description (Info)."""

    sequential: Run
    levels: list[Level]
    info: pb.InfoResponse | None
    prebuilt: int = 0  # lists refreshed with a serialized answer (ours, after the refresh)


def run_serve(
    registry: Path | None = None,
    *,
    providers: str = "auto",
    catalogue_items: int = 0,
    sessions: int = SESSIONS,
    requests: int = REQUESTS,
    levels: Sequence[int] = LEVELS,
    level_seconds: float = LEVEL_SECONDS,
    seed: int = SEED,
) -> dict[str, Any]:
    """Measure the three servers and return the figures as one flat dict (the JSON line's content)."""
    if providers not in ("auto", *PROVIDER_CHOICES):
        raise ConfigError(f"providers must be auto or one of {sorted(PROVIDER_CHOICES)}, not {providers!r}")
    choose_providers(providers)  # a GPU provider this onnxruntime lacks fails here, before anything starts
    registry = _registry(registry, catalogue_items)
    version = current_version(registry)
    manifest = load_manifest(registry / version)
    vocabulary = load_vocabulary(registry / version)
    data = make_sessions(vocabulary, sessions, seed=seed + 61)
    plan = Plan(requests, tuple(levels), level_seconds, P99_LIMIT_MS)
    load_before = os.getloadavg()[0]
    project = f"bserve{uuid.uuid4().hex[:6]}"
    # the stack's directory (Redis, the Feast registry, server logs) goes with the run; start errors quote the logs
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-serve-") as tmp, LocalStack(Path(tmp)) as stack:
        redis_url = stack.start_redis()
        seed_sessions(redis_url, project, data)
        calls = _requests(data, max(requests, sessions), seed)
        common = ["--registry", str(registry), "--version", version, "--redis-url", redis_url, "--project", project]
        refresh = partial(refresh_through_score, redis_url=redis_url, project=project, sessions=data, k=K)
        naive_args = [
            *common,
            "--device",
            "cuda" if providers in ("cuda", "tensorrt") else "cpu",
            "--feast-dir",
            str(stack.state_dir / "feast"),
        ]
        gc.collect()
        gc.freeze()  # the client's collections then skip the sessions and requests built above: fewer pauses
        servers = {"echo": [], "ours": [*common, "--providers", providers], "naive": naive_args}
        if manifest.model_type not in NEURAL_MODEL_TYPES:  # session kNN: no torch model for the naive scorer to run
            del servers["naive"]
        try:
            addresses = {kind: _start(stack, kind, args) for kind, args in servers.items()}
            measured = asyncio.run(_drive(addresses, calls, plan, refresh))
        finally:
            gc.unfreeze()
            for kind in servers:
                stack.stop_service(kind)
    return _result(measured, plan, data, manifest, load_before)


def _registry(registry: Path | None, catalogue_items: int) -> Path:
    if catalogue_items and registry is not None:
        raise ConfigError("give either a registry or a catalogue size, not both")
    if catalogue_items:
        from streamrec.bench.serve_catalogue import catalogue_registry

        return catalogue_registry(catalogue_items)
    return registry or bench_registry()


def _requests(data: Sessions, n: int, seed: int) -> list[pb.RecommendRequest]:
    import numpy as np

    ids = list(data.by_id)
    picks = np.random.default_rng(seed).integers(0, len(ids), size=n)
    return [pb.RecommendRequest(session_id=ids[i], k=K, context=pb.PageContext(page="home")) for i in picks.tolist()]


def _start(stack: LocalStack, kind: str, argv: list[str]) -> str:
    """Start one server in its own process; its address once it reports SERVING."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    print(f"bench serve: starting {kind} ...", file=sys.stderr, flush=True)
    stack.spawn(
        kind,
        [sys.executable, "-m", "streamrec.bench.serve_servers", kind, "--port", str(port), *argv],
        address,
        lambda: scorer_ready(address),
        timeout_s=START_TIMEOUT_S,
    )
    return address


async def _drive(
    addresses: dict[str, str],
    calls: list[pb.RecommendRequest],
    plan: Plan,
    refresh: Callable[[str], Awaitable[int]],
) -> dict[str, Figures]:
    drivers = {kind: Driver(address, calls) for kind, address in addresses.items()}
    try:
        infos = {kind: await _info(driver) for kind, driver in drivers.items()}
        print("bench serve: measuring, servers in alternation ...", file=sys.stderr, flush=True)
        sequential = await sequential_together(drivers, plan.requests, WARMUP, SEQUENTIAL_ROUNDS)
        levels = await step_up_together(drivers, plan.levels, plan.level_seconds, plan.p99_limit_ms, LEVEL_ROUNDS)
        print("bench serve: refreshing every session's list through Score, as the worker does ...", file=sys.stderr)
        prebuilt = await refresh(addresses["ours"])
        refreshed = await drivers["ours"].sequential(plan.requests, WARMUP)
        # the hot path under load, against the echo floor measured again beside it
        pair = {kind: drivers[kind] for kind in ("ours", "echo")}
        levels_refreshed = await step_up_together(
            pair, plan.levels, plan.level_seconds, plan.p99_limit_ms, LEVEL_ROUNDS
        )
    finally:
        for driver in drivers.values():
            await driver.close()
    figures = {kind: Figures(sequential[kind], levels[kind], infos[kind]) for kind in drivers}
    figures["ours_refreshed"] = Figures(refreshed, levels_refreshed["ours"], infos["ours"], prebuilt=prebuilt)
    figures["echo_refreshed"] = Figures(Run(), levels_refreshed["echo"], None)  # its step-up only
    return figures


async def _info(driver: Driver) -> pb.InfoResponse | None:
    import grpc

    try:
        return await recommender_pb2_grpc.RecommenderStub(driver.channel).Info(pb.InfoRequest(), timeout=5)
    except grpc.RpcError:  # the echo server has no Info
        return None


def _ms(value: float) -> float:
    return round(value, 3)


def _ratio(ours: float, baseline: float) -> float | None:
    """None (JSON null) where the baseline reached nothing (no load step within the bound): no ratio exists."""
    return round(ours / baseline, 3) if baseline > 0 else None


def _levels(levels: list[Level]) -> list[list[float]]:
    """[concurrency, req/s, p99 ms] per step: how each server's latency grew with load."""
    return [[level.concurrency, round(level.rps, 1), _ms(level.p99_ms)] for level in levels]


def _share(run: Run, source: str) -> float:
    if not run.latencies_ms:
        return 0.0
    return round(run.sources[source] / len(run.latencies_ms), 4)


def _result(
    measured: dict[str, Figures], plan: Plan, data: Sessions, manifest: Manifest, load_before: float
) -> dict[str, Any]:
    limit = plan.p99_limit_ms
    ours, echo, hot = measured["ours"], measured["echo"], measured["ours_refreshed"]
    naive = measured.get("naive")
    out: dict[str, Any] = {}
    for prefix, figures in (("", ours), ("echo_", echo), ("naive_", naive)):
        if figures is None:  # no naive scorer for this model family: its figures are null
            out |= {f"{prefix}p50_ms": None, f"{prefix}p99_ms": None, f"{prefix}max_rps_p99_under_10ms": 0.0}
            continue
        out[f"{prefix}p50_ms"] = _ms(figures.sequential.percentile_ms(50))
        out[f"{prefix}p99_ms"] = _ms(figures.sequential.percentile_ms(99))
        out[f"{prefix}max_rps_p99_under_10ms"] = round(max_rps_within(figures.levels, limit), 1)
    refreshed_rps = round(max_rps_within(hot.levels, limit), 1)
    echo_beside = round(max_rps_within(measured["echo_refreshed"].levels, limit), 1)
    info = ours.info or pb.InfoResponse()
    naive_info = (naive.info if naive is not None else None) or pb.InfoResponse()
    return {
        **out,
        "p50_ms_refreshed": _ms(hot.sequential.percentile_ms(50)),
        "p99_ms_refreshed": _ms(hot.sequential.percentile_ms(99)),
        "refreshed_max_rps_p99_under_10ms": refreshed_rps,
        "echo_max_rps_beside_refreshed": echo_beside,
        "refreshed_rps_over_echo": _ratio(refreshed_rps, echo_beside),
        "p50_over_echo": _ratio(out["p50_ms"], out["echo_p50_ms"]),
        "rps_over_echo": _ratio(out["max_rps_p99_under_10ms"], out["echo_max_rps_p99_under_10ms"]),
        "rps_over_naive": _ratio(out["max_rps_p99_under_10ms"], out["naive_max_rps_p99_under_10ms"]),
        "model_type": info.model_type,
        "model_version": info.model_version,
        "providers": list(info.providers),
        "naive_runs_on": list(naive_info.providers),
        "sessions": len(data.by_id),
        "prebuilt_lists": hot.prebuilt,
        "catalogue_items": manifest.n_items - 1,  # the vocabulary less its padding entry
        "data": {"sessions": data.source, "model": str(manifest.data.get("source", "unknown"))},
        "inline_share": _share(ours.sequential, "inline"),
        "refreshed_share": _share(hot.sequential, "refreshed"),
        "requests": plan.requests,
        "load": f"closed loop, 1 grpc.aio channel, {plan.level_seconds:g} s per concurrency step, p99 <= {limit:g} ms",
        "levels": {
            name: _levels(f.levels)
            for name, f in (("ours", ours), ("echo", echo), ("naive", naive), ("ours_refreshed", hot))
            if f is not None
        },
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_serve()))
