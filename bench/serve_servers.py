"""The three Recommender servers `streamrec bench serve` compares, one per process.

`python -m streamrec.bench.serve_servers {ours,echo,naive} --port P ...`; each reports SERVING on grpc.health.v1
once ready and stops on SIGTERM.

* ours: `streamrec.serving.server.create_server` with the scorer's defaults, only the addresses and model given;
* echo: the floor, built like ours (grpc.aio, the same options, health and reflection) with a Recommender that
  returns one fixed answer of the usual size without doing any work;
* naive: a Feast SDK read and a torch eager forward per request (bench/serve_naive.py), built the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from streamrec.config import CoreSettings
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving.config import ServingSettings
from streamrec.serving.server import HEALTH_NAME, SERVICE_NAME

ECHO_ITEMS = 20  # as many items as a default Recommend answer carries, so the bytes on the wire match


class EchoRecommender(recommender_pb2_grpc.RecommenderServicer):
    """Answers every Recommend with the same prebuilt response."""

    def __init__(self) -> None:
        items = [
            pb.ScoredItem(item_id=f"i{n:05d}", score=1.0 / (n + 1), reason="session model") for n in range(ECHO_ITEMS)
        ]
        self.answer = pb.RecommendResponse(items=items, model_version="echo", source="echo")

    async def Recommend(self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        return self.answer


async def serve_like_ours(servicer: recommender_pb2_grpc.RecommenderServicer, port: int) -> None:
    """Serve `servicer` on a server built as serving.server.create_server builds ours, until SIGTERM/SIGINT."""
    limit = ServingSettings.model_fields["max_message_bytes"].default
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_NAME, reflection.SERVICE_NAME), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await _until_stopped()
    await server.stop(0)


async def serve_ours(args: argparse.Namespace) -> None:
    from streamrec.serving.server import create_server

    core = CoreSettings(redis_url=args.redis_url, project=args.project)
    settings = ServingSettings(
        core=core, port=args.port, registry=args.registry, model_version=args.version, providers=args.providers
    )
    scorer = await create_server(settings)
    await _until_stopped()
    await scorer.stop(0)


async def serve_naive(args: argparse.Namespace) -> None:
    from streamrec.bench.serve_naive import naive_recommender

    version_dir = args.registry / args.version
    servicer = naive_recommender(version_dir, args.project, args.redis_url, args.feast_dir, args.device)
    await serve_like_ours(servicer, args.port)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m streamrec.bench.serve_servers", description=__doc__)
    parser.add_argument("kind", choices=["ours", "echo", "naive"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--registry", type=Path, default=Path("."))
    parser.add_argument("--version", default="", help="model version (default: the registry's CURRENT)")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--project", default="streamrec")
    parser.add_argument("--providers", default="auto", help="ours: ONNX Runtime providers")
    parser.add_argument("--device", default="cpu", help="naive: torch device")
    parser.add_argument("--feast-dir", type=Path, default=Path(".streamrec/bench/feast"), help="naive: Feast state")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.kind == "ours":
        asyncio.run(serve_ours(args))
    elif args.kind == "echo":
        asyncio.run(serve_like_ours(EchoRecommender(), args.port))
    else:
        asyncio.run(serve_naive(args))


if __name__ == "__main__":
    main()
