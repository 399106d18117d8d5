"""One event in, refreshed recommendations out: through a real broker, real Redis and a real gRPC channel."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
import redis
from confluent_kafka import Consumer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from streamrec.config import DLQ_TOPIC, EVENTS_TOPIC
from streamrec.devstack.probe import click, wait_for_refresh
from streamrec.devstack.stack import StackAddresses
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.stream.producer import EventProducer
from streamrec.training.synthetic import SyntheticConfig, make_catalogue

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stub(streamrec_stack: StackAddresses) -> Iterator[recommender_pb2_grpc.RecommenderStub]:
    with grpc.insecure_channel(streamrec_stack.grpc) as channel:
        yield recommender_pb2_grpc.RecommenderStub(channel)


@pytest.fixture(scope="module")
def store(streamrec_stack: StackAddresses) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(streamrec_stack.redis)
    yield client
    client.close()


def publish_and_wait(stack: StackAddresses, store: redis.Redis, session_id: str, item: str) -> str:
    event = click(session_id, item)
    producer = EventProducer(stack.kafka, EVENTS_TOPIC)
    producer.send(session_id, event.to_bytes())
    assert producer.flush(10) == 0 and not producer.failed
    wait_for_refresh(store, stack.project, session_id, event.event_id, timeout_s=30)
    return event.event_id


def ids(reply: pb.RecommendResponse) -> list[str]:
    return [item.item_id for item in reply.items]


def test_a_click_refreshes_the_sessions_recommendations(
    streamrec_stack: StackAddresses, stub: recommender_pb2_grpc.RecommenderStub, store: redis.Redis
) -> None:
    catalogue = make_catalogue(SyntheticConfig())
    session_id = f"it-{uuid.uuid4().hex[:8]}"
    first, second = catalogue.item_ids[10], catalogue.item_ids[200]
    before_any = stub.Recommend(pb.RecommendRequest(session_id=session_id, k=10), timeout=5)
    assert before_any.fallback and before_any.source == "popularity"

    publish_and_wait(streamrec_stack, store, session_id, first)
    before = stub.Recommend(pb.RecommendRequest(session_id=session_id, k=10), timeout=5)
    second_event = publish_and_wait(streamrec_stack, store, session_id, second)
    after = stub.Recommend(pb.RecommendRequest(session_id=session_id, k=10), timeout=5)

    assert after.model_version and not after.fallback and after.source == "refreshed"
    assert after.cause_event_id == second_event  # one event can be followed to the list it caused
    assert ids(after) != ids(before)
    # the synthetic world's rule: an item is usually followed by its successor; the model has learned it
    assert catalogue.successor_of(second) in ids(after)[:5]
    assert catalogue.successor_of(first) in ids(before)[:5]
    state = SessionState.from_json(store.get(session_key(streamrec_stack.project, session_id)))  # type: ignore[arg-type]
    assert state.items == [first, second]


def test_bad_arguments_get_invalid_argument(stub: recommender_pb2_grpc.RecommenderStub) -> None:
    for request, needle in [
        (pb.RecommendRequest(session_id="s", k=0), "k must be between 1 and 1000"),
        (pb.RecommendRequest(session_id="s", k=1001), "k must be between"),
        (pb.RecommendRequest(session_id="", k=5), "session_id must not be empty"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            stub.Recommend(request, timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in (info.value.details() or "")


def test_health_and_reflection(streamrec_stack: StackAddresses) -> None:
    with grpc.insecure_channel(streamrec_stack.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="streamrec.v1.Recommender"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert "streamrec.v1.Recommender" in names and "grpc.health.v1.Health" in names


def test_malformed_event_goes_to_the_dead_letter_topic(streamrec_stack: StackAddresses, store: redis.Redis) -> None:
    session_id = f"dlq-{uuid.uuid4().hex[:8]}"
    producer = EventProducer(streamrec_stack.kafka, EVENTS_TOPIC)
    producer.send(session_id, b"\x08\x96\x01 this is not an Event \xff")
    producer.flush(10)
    publish_and_wait(streamrec_stack, store, session_id, "i00001")  # the worker goes on after the bad record
    consumer = Consumer(
        {
            "bootstrap.servers": streamrec_stack.kafka,
            "group.id": f"dlq-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([DLQ_TOPIC])
    found = None
    deadline = time.monotonic() + 30
    while found is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error() and message.key() == session_id.encode():
            found = message
    consumer.close()
    assert found is not None, "no dead letter for the malformed record"
    headers = dict(found.headers() or [])
    assert headers["reason"] == b"undecodable"
    assert found.value() == b"\x08\x96\x01 this is not an Event \xff"
