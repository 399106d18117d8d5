"""The Redis layer against real redis-servers: ACL users, every database form, TLS and mutual TLS, a restart
while the dataset loads (LOADING), and NOAUTH: every client reads the same data from one URL, errors arrive
inside streamrec's tree, and the scorer answers from popularity with fallback=true instead of failing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from streamrec.config import CoreSettings
from streamrec.devstack.localstack import LocalStack, free_port, port_open, redis_server_binary
from streamrec.errors import RedisReplyError, RedisUnavailable, StreamrecError
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import FastRedis, RedisTarget, sync_client
from streamrec.serving import metrics
from streamrec.serving.config import ServingSettings
from streamrec.serving.popularity import PopularitySource
from streamrec.serving.server import create_server
from streamrec.serving.session_reader import SessionReader
from tests.security.certs import make_certs

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(state_dir=tmp_path / "stack") as local:
        yield local


def _port(url: str) -> int:
    return RedisTarget.from_url(url).port


async def test_an_acl_user_and_each_database_form_reach_the_same_data(stack: LocalStack) -> None:
    port = _port(stack.start_redis(password="admin-pw"))
    admin = sync_client(f"redis://:admin-pw@127.0.0.1:{port}")
    admin.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all")  # app:* keys only
    for n, form in enumerate(["/3", "?db=3", "/?db=3", "/3?db=3"]):
        url = f"redis://app:app-pw@127.0.0.1:{port}{form}"
        fast = FastRedis(url)
        await fast.execute([("SET", f"app:{n}", form)])
        assert sync_client(url).get(f"app:{n}") == form.encode()  # redis-py, built from the same target
        assert sync_client(f"redis://:admin-pw@127.0.0.1:{port}/3").get(f"app:{n}") == form.encode()
        assert admin.get(f"app:{n}") is None  # not database 0
        with pytest.raises(RedisReplyError) as denied:
            await fast.execute([("SET", "elsewhere", 1)])
        assert denied.value.code == "NOPERM" and isinstance(denied.value, StreamrecError)
        await fast.aclose()
    wrong = FastRedis(f"redis://app:nope@127.0.0.1:{port}/3", retry_after_s=0)
    with pytest.raises(RedisReplyError) as refused:
        await wrong.mget("app:0")
    assert refused.value.code == "WRONGPASS"


def _tls_build(binary: str) -> bool:
    """Whether this redis-server was built with TLS (a build without it refuses the tls-port directive)."""
    try:
        done = subprocess.run([binary, "--port", "0", "--tls-port", "0"], capture_output=True, timeout=2)
    except subprocess.TimeoutExpired:
        return True  # it started: the directive was accepted
    return b"Bad directive" not in done.stdout + done.stderr


async def test_tls_and_mutual_tls(stack: LocalStack, tmp_path: Path) -> None:
    if not _tls_build(redis_server_binary()):
        pytest.skip(f"{redis_server_binary()} has no TLS (make test installs Debian's redis-server, which has)")
    certs = make_certs(tmp_path)
    tls_port, mtls_port = free_port(), free_port()
    tls = ["--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key)]
    tls += ["--tls-ca-cert-file", str(certs.ca)]
    stack.start_redis(extra_args=[*tls, "--tls-port", str(tls_port), "--tls-auth-clients", "no"])
    url = f"rediss://127.0.0.1:{tls_port}/2?ssl_ca_certs={certs.ca}"
    client = FastRedis(url)
    await client.execute([("SET", "k", b"over tls")])
    assert sync_client(url).get("k") == b"over tls"
    assert client.blocking_reader(0.003) is None  # a blocking TLS read is not short: this mode stays off
    with pytest.raises(RedisUnavailable):  # the server's certificate is not trusted without the CA
        await FastRedis(f"rediss://127.0.0.1:{tls_port}/2").mget("k")

    stack.stop_service("redis")
    stack.start_redis(extra_args=[*tls, "--tls-port", str(mtls_port), "--tls-auth-clients", "yes"])
    with pytest.raises(RedisUnavailable):  # no client certificate
        await FastRedis(f"rediss://127.0.0.1:{mtls_port}/0?ssl_ca_certs={certs.ca}").mget("k")
    mutual = f"rediss://127.0.0.1:{mtls_port}/0?ssl_ca_certs={certs.ca}"
    mutual += f"&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    await FastRedis(mutual).execute([("SET", "m", b"mutual")])
    assert sync_client(mutual).get("m") == b"mutual"


async def test_a_restart_that_is_still_loading_reads_as_unavailable_and_then_recovers(
    stack: LocalStack, project: str
) -> None:
    url = stack.start_redis()
    port = _port(url)
    writer = sync_client(url)
    with writer.pipeline(transaction=False) as pipe:
        for i in range(20_000):
            pipe.set(f"fill:{i}", b"x")
        pipe.execute()
    writer.save()
    stack.stop_service("redis")
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    # a few seconds of loading, with clients answered (LOADING) all along rather than after it
    argv += ["--dir", str(stack.state_dir / f"redis-{port}"), "--key-load-delay", "200"]
    argv += ["--loading-process-events-interval-bytes", "1024"]
    stack.spawn("redis", argv, f"127.0.0.1:{port}", lambda: port_open("127.0.0.1", port))

    client = FastRedis(url, retry_after_s=0)
    with pytest.raises(RedisReplyError) as loading:
        await client.mget("fill:1")
    assert loading.value.code == "LOADING"
    reader = SessionReader(client, project)
    assert await reader.read("s1", timeout_s=1.0) == (None, None, False)  # no state: the answer falls back
    popularity = PopularitySource(client, project, ["p1", "p2"])
    await popularity.refresh()
    assert popularity.items == ["p1", "p2"] and not popularity.redis_ok
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if await client.mget("fill:1") == [b"x"]:
                break
        except RedisReplyError:
            time.sleep(0.2)
    assert await client.mget("fill:19999") == [b"x"]
    await client.aclose()


async def test_noauth_makes_the_scorer_answer_from_popularity(
    stack: LocalStack, project: str, trained_registry: Path
) -> None:
    port = _port(stack.start_redis(password="server-pw"))
    settings = ServingSettings(
        core=CoreSettings(redis_url=SecretStr(f"redis://127.0.0.1:{port}/0"), project=project),  # no password
        port=0,
        registry=trained_registry,
        reload_interval_s=0,
        blocking_read_timeout_ms=0,
    )
    with pytest.raises(RedisReplyError) as noauth:
        await FastRedis(settings.core.redis_url.get_secret_value()).mget("k")
    assert noauth.value.code == "NOAUTH"
    scorer = await create_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            reply = await stub.Recommend(pb.RecommendRequest(session_id="s1", k=3), timeout=5)
        assert reply.fallback and len(reply.items) == 3
        assert metrics.REGISTRY.get_sample_value("streamrec_scorer_redis_up") == 0
    finally:
        await scorer.stop(0)
