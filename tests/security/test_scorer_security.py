"""Tokens with scopes, TLS and mutual TLS on a real scorer over real sockets; secrets absent from logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from streamrec.config import CoreSettings
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.security import channel_credentials
from streamrec.serving.config import ServingSettings
from streamrec.serving.server import Scorer, create_server
from tests.security.certs import Certs, make_certs

pytestmark = pytest.mark.integration
TOKENS = {"shop-secret-token": ["recommend"], "worker-secret-token": ["score"], "ops-secret-token": ["admin"]}


@pytest.fixture
async def start(redis_url: str, project: str, trained_registry: Path) -> AsyncIterator[Callable[..., Any]]:
    scorers: list[Scorer] = []

    async def _start(**overrides: Any) -> Scorer:
        settings = ServingSettings(
            core=CoreSettings(redis_url=SecretStr(redis_url), project=project),
            port=0,
            registry=trained_registry,
            reload_interval_s=0,
            **overrides,
        )
        scorer = await create_server(settings)
        scorers.append(scorer)
        return scorer

    yield _start
    for scorer in scorers:
        await scorer.stop(0)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_tokens_and_scopes(start: Callable[..., Any]) -> None:
    scorer = await start(auth_tokens=SecretStr(json.dumps(TOKENS)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        request = pb.RecommendRequest(session_id="s", k=3)
        for metadata, code in [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            (bearer("forged"), grpc.StatusCode.UNAUTHENTICATED),
            (bearer("worker-secret-token"), grpc.StatusCode.PERMISSION_DENIED),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Recommend(request, metadata=metadata, timeout=5)
            assert info.value.code() == code
        assert len((await stub.Recommend(request, metadata=bearer("shop-secret-token"), timeout=5)).items) == 3
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Info(pb.InfoRequest(), metadata=bearer("shop-secret-token"), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await stub.Info(pb.InfoRequest(), metadata=bearer("ops-secret-token"), timeout=5)).model_version
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no token


async def test_tls_and_mutual_tls(start: Callable[..., Any], tmp_path: Path) -> None:
    certs: Certs = make_certs(tmp_path)
    tls = await start(tls_cert_file=certs.server_cert, tls_key_file=certs.server_key)
    request = pb.RecommendRequest(session_id="s", k=2)
    async with grpc.aio.secure_channel(f"127.0.0.1:{tls.port}", channel_credentials(certs.ca)) as channel:
        assert len((await recommender_pb2_grpc.RecommenderStub(channel).Recommend(request, timeout=5)).items) == 2
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError):  # plaintext to a TLS port never gets an answer
            await recommender_pb2_grpc.RecommenderStub(channel).Recommend(request, timeout=2)

    mtls = await start(tls_cert_file=certs.server_cert, tls_key_file=certs.server_key, tls_client_ca_file=certs.ca)
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls.port}", channel_credentials(certs.ca)) as channel:
        with pytest.raises(grpc.aio.AioRpcError):  # no client certificate
            await recommender_pb2_grpc.RecommenderStub(channel).Recommend(request, timeout=2)
    with_cert = channel_credentials(certs.ca, certs.client_cert, certs.client_key)
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls.port}", with_cert) as channel:
        assert len((await recommender_pb2_grpc.RecommenderStub(channel).Recommend(request, timeout=5)).items) == 2


def test_secrets_never_reach_the_logs(tmp_path: Path, trained_registry: Path) -> None:
    """Scorer and worker run as processes with every secret set; their logs contain none of them."""
    secrets = {"redis": "redis-pass-8d1f", "token": "worker-secret-token", "user_key": "pseudonym-key-77aa"}
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        kafka = stack.start_broker()
        redis_url = stack.start_redis(password=secrets["redis"])
        port = free_port()
        env = {
            "STREAMREC_KAFKA_BOOTSTRAP": kafka,
            "STREAMREC_REDIS_URL": redis_url,
            "STREAMREC_PROJECT": "sec",
            "STREAMREC_SCORER_ADDRESS": f"127.0.0.1:{port}",
            "STREAMREC_SERVING_REGISTRY": str(trained_registry),
            "STREAMREC_SERVING_AUTH_TOKENS": json.dumps(TOKENS),
            "STREAMREC_STREAM_SCORER_TOKEN": secrets["token"],
            "STREAMREC_USER_ID_KEY": secrets["user_key"],
            "STREAMREC_STREAM_SESSION_TIMEOUT_S": "6",
        }
        from streamrec.devstack.stack import scorer_ready

        stack.python_module(
            "scorer",
            ["-v", "serve", "--port", str(port)],
            f"127.0.0.1:{port}",
            lambda: scorer_ready(f"127.0.0.1:{port}"),
            env=env,
        )
        worker = stack.python_module("worker", ["-v", "worker"], kafka, lambda: True, env=env)
        time.sleep(8)  # joined, connected, logged its start-up at debug level
        assert worker.alive(), worker.log_tail()
        logs = b"".join(path.read_bytes() for path in (tmp_path / "stack").glob("*.log"))
    assert len(logs) > 1000
    for secret in secrets.values():
        assert secret.encode() not in logs, f"a secret appears in the logs: {secret[:4]}..."
    code = "from serving.config import ServingSettings as S; print(repr(S()))"
    dump = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "registry=" in dump and "redis_url=SecretStr('**********')" in dump  # printed, and masked
    assert secrets["redis"] not in dump and "worker-secret-token" not in dump
