"""The catalogue through a real Apache Kafka broker, a worker process and redis-server: products published (one of
them malformed, one deleted by a tombstone) reach the catalogue in Redis and its Feast rows, the malformed one the
catalogue's dead-letter topic with its reason; and `streamrec catalog publish` on a CSV made here."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource

from streamrec.cli import main
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.stack import StackOptions, create_topics, service_env
from streamrec.features.catalog_store import load_catalog, read_changes
from streamrec.features.online import FeatureLayout
from streamrec.protos.catalog_pb2 import Product
from streamrec.stream.config import CATALOG_DLQ_TOPIC, CATALOG_TOPIC
from streamrec.stream.producer import EventProducer
from tests.features.layout_io import read_rows

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, stack: LocalStack, kafka: str, redis_url: str, project: str) -> None:
        self.stack, self.kafka, self.redis_url, self.project = stack, kafka, redis_url, project
        self.metrics_port = free_port()
        # no scorer: the catalogue does not need one (the worker connects to it only to refresh sessions)
        self.env = service_env(
            kafka, redis_url, f"127.0.0.1:{free_port()}", Path("none"), StackOptions(project=project)
        )
        self.env["STREAMREC_STREAM_METRICS_PORT"] = str(self.metrics_port)
        self.env["STREAMREC_STREAM_DATA_DIR"] = str(stack.state_dir / "worker")

    def start_worker(self) -> Service:
        return self.stack.python_module("worker", ["worker"], self.kafka, lambda: True, env=self.env)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        kafka, redis_url = stack.start_broker(), stack.start_redis()
        create_topics(kafka, 1)
        yield Running(stack, kafka, redis_url, f"t{uuid.uuid4().hex[:8]}")


def wait_for(check, worker: Service | None = None, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker is not None:
            assert worker.alive(), worker.log_tail()
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout_s} s" + (f"\n{worker.log_tail()}" if worker else ""))


def dead_letters(kafka: str, expected: int, timeout_s: float = 30) -> list[tuple[bytes | None, bytes, str]]:
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": f"dlq-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([CATALOG_DLQ_TOPIC])
    letters: list[tuple[bytes | None, bytes, str]] = []
    deadline = time.monotonic() + timeout_s
    while len(letters) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            headers = dict(message.headers() or [])
            letters.append((message.key(), message.value() or b"", headers["reason"].decode()))
    consumer.close()
    return letters


def cleanup_policy(kafka: str, topic: str) -> str:
    """The topic's cleanup.policy; "" while it does not exist."""
    admin = AdminClient({"bootstrap.servers": kafka})
    [future] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    try:
        return str(future.result(timeout=10)["cleanup.policy"].value)
    except Exception as exc:  # KafkaException: UNKNOWN_TOPIC_OR_PART
        if "UNKNOWN_TOPIC" in str(exc):
            return ""
        raise


def product(product_id: str, title: str, updated_ms: int, **kw: object) -> bytes:
    return Product(product_id=product_id, title=title, updated_ms=updated_ms, available=True, **kw).SerializeToString()  # type: ignore[arg-type]


def test_products_reach_the_catalogue_and_a_malformed_one_the_dead_letters(running: Running) -> None:
    worker = running.start_worker()
    # the worker declares the topic compacted; a producer first would have the broker create an ordinary one
    wait_for(lambda: cleanup_policy(running.kafka, CATALOG_TOPIC) == "compact", worker)
    now = int(time.time() * 1000)
    producer = EventProducer(running.kafka, CATALOG_TOPIC)
    producer.send("p1", product("p1", "Cordless drill", now - 3000, brand="Acme", price=99.0))
    producer.send("p2", product("p2", "Hammer", now - 3000))
    producer.send("p3", b"\xff\xfe not a product")
    producer.send("p1", product("p1", "Cordless drill, older record", now - 9000))  # ignored: older
    producer.send("p4", product("p4", "Saw", now - 3000))
    producer.producer.produce(CATALOG_TOPIC, key=b"p4", value=None)  # a tombstone deletes p4
    assert producer.flush(10) == 0 and not producer.failed
    client = running.client()
    layout = FeatureLayout(running.project)

    def settled() -> bool:
        products, _ = load_catalog(client, running.project)
        return sorted(products) == ["p1", "p2"] and bool(read_changes(client, running.project, "0-0", 0)[3:])

    wait_for(settled, worker)
    products, last = load_catalog(client, running.project)
    assert products["p1"].title == "Cordless drill" and products["p1"].brand == "Acme"
    changes = read_changes(client, running.project, "0-0", block_ms=0)
    assert [(pid, p is None) for _, pid, p in changes] == [("p1", False), ("p2", False), ("p4", False), ("p4", True)]
    assert changes[-1][0] == last
    [p1, p4] = read_rows(layout, client, "product_features", ["p1", "p4"])
    assert p1 is not None and (p1["title"], p1["price"], p1["available"]) == ("Cordless drill", 99.0, True)
    assert p4 is None

    assert dead_letters(running.kafka, expected=1) == [(b"p3", b"\xff\xfe not a product", "undecodable")]
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=5).read().decode()
    assert 'streamrec_worker_catalog_records_total{outcome="applied"} 4.0' in scraped
    assert 'streamrec_worker_catalog_records_total{outcome="ignored"} 1.0' in scraped
    assert 'streamrec_worker_catalog_dead_letters_total{reason="undecodable"} 1.0' in scraped


def test_catalog_publish_produces_a_csv_and_reports_refused_rows(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "product_uid,product_title,brand,price,in_stock\n"
        "00042,Tile saw,Acme,199.5,yes\n"
        "00043,,Acme,10,yes\n"  # no title: refused
        "00044,Grout,,,no\n"
        "00045,Trowel,Acme,-1,yes\n"  # a negative price: refused
    )
    code = main(
        [
            "catalog",
            "publish",
            str(export),
            "--map",
            "product_id=product_uid",
            "--map",
            "title=product_title",
            "--map",
            "available=in_stock",
            "--bootstrap",
            running.kafka,
            "--no-progress",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1  # some rows were refused
    assert (summary["rows"], summary["produced"], summary["refused"], summary["failed"]) == (4, 2, 2, 0)
    assert summary["refused_by_reason"] == {"missing_field": 1, "bad_value": 1}
    assert summary["examples"][0].startswith("row 2: missing_field")
    assert cleanup_policy(running.kafka, CATALOG_TOPIC) == "compact"  # created by publish, before the worker

    worker = running.start_worker()
    client = running.client()
    products = wait_for(lambda: (p := load_catalog(client, running.project)[0]) and len(p) == 2 and p, worker)
    assert products["00042"].title == "Tile saw" and products["00042"].price == 199.5 and products["00042"].available
    assert not products["00044"].available and not products["00044"].HasField("price")
    assert products["00044"].updated_ms > 0  # no updated_ms column: the time of publishing
