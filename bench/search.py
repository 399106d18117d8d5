"""`streamrec bench search`: Search over gRPC beside Recommend and the echo floor, and catalogue event -> searchable.

One run: the whole local stack (broker, Redis, one scorer, one worker), the catalogue published through the
catalogue topic and the worker (`catalog publish`'s path), the scorer searching it with the served configuration
(the exported int8 encoder and the ranker of `streamrec search train`, trained first when absent). The catalogue
and the queries are the Home Depot file's titles and search terms when ../shared/data has it (the JSON says which),
else the synthetic catalogue's. Measured: Search with one sequential client (p50, p99), the query encoding alone
(`encode_p50_ms`, in this process), the highest Search throughput whose p99 stays within 10 ms (closed-loop
steps), Recommend and a bare echo server with one client in alternating rounds (the floor of this machine), and
`catalog_to_searchable_*`: a new product produced to the catalogue topic, then searched for by its title every
2 ms until the scorer returns it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from streamrec.bench.common import bench_registry
from streamrec.bench.serve_load import Driver, max_rps_within, sequential_together, step_up_together
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import StackOptions, scorer_ready, start_stack
from streamrec.protos import catalog_pb2, recommender_pb2_grpc
from streamrec.protos import recommender_pb2 as pb
from streamrec.stream.config import CATALOG_TOPIC
from streamrec.stream.producer import EventProducer

ROOT = Path(__file__).resolve().parents[1]
HOMEDEPOT = ROOT / "../shared/data/homedepot_search_relevance_dev.csv.gz"
P99_LIMIT_MS = 10.0
LEVELS = (1, 2, 4, 8, 16)
POLL_S = 0.002


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def catalogue_and_queries(labels: Path | None) -> tuple[list[catalog_pb2.Product], list[str], str, Path]:
    """The products to publish, the queries to send, which data they came from, and the labels to train on."""
    from streamrec.training.search_eval import catalogue_of, load_labels
    from streamrec.training.synthetic_catalogue import synthetic_labels, synthetic_products

    now = int(time.time() * 1000)
    if labels is not None and labels.is_file():
        frame = load_labels(labels)
        listings = catalogue_of(frame)
        products = [
            catalog_pb2.Product(product_id=x.product_id, title=x.title, available=True, updated_ms=now)
            for x in listings
        ]
        return products, sorted(frame["term"].unique().tolist()), f"homedepot ({labels.name})", labels
    made = synthetic_products()
    products = [p.to_product(now) for p in made]
    frame = synthetic_labels(made, 300, seed=5)
    path = ROOT / ".streamrec/bench/search-labels.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="latin-1")
    return products, sorted(frame["search_term"].unique().tolist()), "synthetic (training/synthetic_catalogue.py)", path


def _ensure_search_parts(labels: Path, search_dir: Path) -> Path:
    from streamrec.search.encoder import default_encoder_dir
    from streamrec.search.ranker import RANKER_FILE
    from streamrec.training.search_eval import train_served_ranker
    from streamrec.training.text_encoder import ensure_encoder

    encoder_dir = ensure_encoder(default_encoder_dir().resolve())
    if not (search_dir / RANKER_FILE).is_file():
        _log(f"training the search ranker on {labels} (once) ...")
        train_served_ranker(labels, search_dir, encoder_dir=encoder_dir, cache_dir=search_dir / "cache", log=_log)
    return encoder_dir


def run_search(queries: int = 300, freshness_samples: int = 50, labels: Path | None = HOMEDEPOT) -> dict[str, Any]:
    products, terms, source, label_file = catalogue_and_queries(labels)
    search_dir = (ROOT / ".streamrec/bench/search" / label_file.stem.split(".")[0]).resolve()
    encoder_dir = _ensure_search_parts(label_file, search_dir)
    encode_p50 = _encode_p50_ms(encoder_dir, terms[:queries])
    os.environ["STREAMREC_SERVING_ENCODER_DIR"] = str(encoder_dir)
    os.environ["STREAMREC_SERVING_SEARCH_DIR"] = str(search_dir)
    with LocalStack() as stack:
        project = f"search{uuid.uuid4().hex[:6]}"
        addresses = start_stack(stack, StackOptions(project=project, registry=bench_registry()))
        _publish(addresses.kafka, products)
        _log(f"published {len(products)} products; waiting for the scorer to index them ...")
        loaded_s = asyncio.run(_wait_indexed(addresses.grpc, len(products)))
        echo = _start_echo(stack)
        result = asyncio.run(_measure(addresses.grpc, echo, addresses.kafka, terms, queries, freshness_samples))
    return {
        "bench": "search",
        "data": source,
        "catalogue_products": len(products),
        "index_seconds": round(loaded_s, 1),
        "encode_p50_ms": round(encode_p50, 3),
        **result,
    }


def _encode_p50_ms(encoder_dir: Path, texts: list[str]) -> float:
    from streamrec.search.encoder import TextEncoder

    encoder = TextEncoder.load(encoder_dir, "int8")
    for text in texts[:20]:
        encoder.encode([text])
    times = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode([text])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50))


def _publish(kafka: str, products: list[catalog_pb2.Product]) -> None:
    producer = EventProducer(kafka, CATALOG_TOPIC)
    for product in products:
        producer.send(product.product_id, product.SerializeToString())
    producer.flush()


async def _wait_indexed(address: str, expected: int, timeout_s: float = 900.0) -> float:
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        while time.perf_counter() - started < timeout_s:
            reply = await stub.Search(pb.SearchRequest(query="a", k=1))
            if reply.catalogue_products >= expected:
                return time.perf_counter() - started
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the scorer did not index {expected} products in {timeout_s:.0f} s")


def _start_echo(stack: LocalStack) -> str:
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [sys.executable, "-m", "streamrec.bench.serve_servers", "echo", "--port", str(port)]
    stack.spawn("echo", argv, address, lambda: scorer_ready(address))
    return address


async def _measure(scorer: str, echo: str, kafka: str, terms: list[str], queries: int, samples: int) -> dict[str, Any]:
    searches = [pb.SearchRequest(query=t, k=10) for t in terms[:queries]]
    search = Driver(scorer, searches, method="Search")
    recommend = Driver(scorer, [pb.RecommendRequest(session_id=f"s{n}", k=20) for n in range(queries)])
    floor = Driver(echo, [pb.RecommendRequest(session_id=f"s{n}", k=20) for n in range(queries)])
    together = await sequential_together(
        {"search": search, "recommend": recommend, "echo": floor}, len(searches), warmup=50, rounds=4
    )
    levels = (await step_up_together({"search": search}, LEVELS, 4.0, P99_LIMIT_MS, rounds=2))["search"]
    fresh = await _catalog_to_searchable(scorer, kafka, samples)
    for driver in (search, recommend, floor):
        await driver.close()
    runs = {name: run for name, run in together.items()}
    out: dict[str, Any] = {}
    for name, run in runs.items():
        out[f"{name}_p50_ms"] = round(run.percentile_ms(50), 3)
        out[f"{name}_p99_ms"] = round(run.percentile_ms(99), 3)
    out["search_errors"] = dict(runs["search"].errors)
    out["search_sources"] = dict(runs["search"].sources)
    out["p99_ms"], out["p50_ms"] = out["search_p99_ms"], out["search_p50_ms"]
    out["max_rps_p99_within_10ms"] = round(max_rps_within(levels, P99_LIMIT_MS), 1)
    out["levels"] = [[lv.concurrency, round(lv.rps, 1), round(lv.p50_ms, 2), round(lv.p99_ms, 2)] for lv in levels]
    out["search_p50_over_echo"] = round(out["search_p50_ms"] / out["echo_p50_ms"], 2)
    out |= fresh
    return out


async def _catalog_to_searchable(scorer: str, kafka: str, samples: int) -> dict[str, Any]:
    """Produce a product whose title no other has, then search its title until the scorer answers it."""
    producer = EventProducer(kafka, CATALOG_TOPIC)
    latencies, missed = [], 0
    async with grpc.aio.insecure_channel(scorer) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        for n in range(samples):
            token = f"zq{uuid.uuid4().hex[:10]}"
            title = f"Freshness Probe {token} Widget"
            product = catalog_pb2.Product(
                product_id=f"probe-{n}", title=title, available=True, updated_ms=int(time.time() * 1000)
            )
            started = time.perf_counter()
            producer.send(product.product_id, product.SerializeToString())
            producer.flush()
            found = False
            while time.perf_counter() - started < 5.0:
                reply = await stub.Search(pb.SearchRequest(query=token, k=1))
                if reply.items and reply.items[0].item_id == product.product_id:
                    found = True
                    break
                await asyncio.sleep(POLL_S)
            if found:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                missed += 1
    return {
        "catalog_to_searchable_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "catalog_to_searchable_p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "catalog_to_searchable_samples": len(latencies),
        "catalog_to_searchable_missed": missed,
    }
