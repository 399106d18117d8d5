"""`streamrec demo`: the whole path on embedded defaults, start to finish, in a couple of minutes.

Starts the local stack (broker, Redis), trains a small model on synthetic sessions, starts scorer and worker,
replays synthetic sessions, then for three sessions prints the recommendations before and after one new click
and the measured event-to-refresh latency; publishes the synthetic catalogue to the catalogue topic and shows
one search (titles, prices, reasons) for a session, with the text encoder exported once into .streamrec/encoder
and a search ranker trained on the synthetic catalogue's labels; stops everything, removes its temporary state
directory (logs, registry, Feast registry, broker and Redis data) and says so in its last line, and exits 0.
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import cast

import redis

from streamrec.channels import insecure_scorer_channel
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.cli_args import kafka_logger
from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.probe import click, wait_for_refresh
from streamrec.devstack.stack import StackOptions, start_stack
from streamrec.errors import StackError
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import recommender_pb2, recommender_pb2_grpc
from streamrec.redis import sync_client
from streamrec.stream.producer import EventProducer, replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered, make_catalogue

SHOWN = 8  # items printed per list
SEARCHES = ("cordless drill", "toliet seat white")  # the second misspelt, as shoppers type
REPLAY_SEED = 11  # sessions the model has not seen, drawn in the same synthetic world it was trained on
# Feast logs each registry cache refresh and the registry's creation at INFO (feast.infra.registry.registry,
# reached through `feast apply` in streamrec.features.feast_apply): noise between the demo's own lines
QUIET_LOGGERS = ("feast",)


def run_demo(sessions: int = 2000, epochs: int | None = None) -> int:
    started = time.perf_counter()
    for name in QUIET_LOGGERS:  # this process only: its warnings and errors still show
        logging.getLogger(name).setLevel(logging.WARNING)
    with LocalStack() as stack:
        print(
            "starting broker and Redis, training a small model, applying the Feast repository, starting scorer "
            "and worker ...",
            flush=True,
        )
        _prepare_search(stack.state_dir)
        addresses = start_stack(stack, StackOptions(train_epochs=epochs, feast_apply=True))
        print(
            f"stack up in {time.perf_counter() - started:.1f}s: kafka {addresses.kafka}, redis {addresses.redis}, "
            f"grpc {addresses.grpc}"
        )
        config = SyntheticConfig(n_sessions=sessions, session_seed=REPLAY_SEED)
        events = generate_time_ordered(config)
        result = replay(events, addresses.kafka, EVENTS_TOPIC, rate=None)
        print(
            f"replayed {result.sent} events of {sessions} sessions in {result.seconds:.1f}s "
            f"(checksum {result.checksum[:12]})"
        )
        client = sync_client(addresses.redis)
        last_event = {e.session_id: e.event_id for e in events}
        demo_sessions = random.Random(REPLAY_SEED).sample(sorted(last_event), 3)
        # an idempotent producer gets its producer id from the broker after connecting (librdkafka retries that
        # after 0.5 s when its first try finds no connection): made now, it is ready by the first click
        producer = EventProducer(addresses.kafka, EVENTS_TOPIC, logger=kafka_logger())  # alive as the broker stops
        waited = time.perf_counter()
        _wait_caught_up(client, addresses.project, last_event)  # measure latency on an idle worker, not a backlog
        print(f"worker processed the replay {time.perf_counter() - waited:.1f}s after it was sent")
        catalogue = make_catalogue(config)
        latencies = []
        with insecure_scorer_channel(addresses.grpc) as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            for n, sid in enumerate(demo_sessions):
                latencies.append(_show_session(stub, producer, client, addresses.project, sid, catalogue, n))
            _show_search(stub, addresses.kafka, config, demo_sessions[0])
        client.close()
    print(f"\nevent -> refreshed recommendations: {', '.join(f'{ms:.1f} ms' for ms in latencies)}")
    state = f"its state ({stack.state_dir}) " + ("left in place" if stack.state_dir.exists() else "removed")
    print(f"demo finished in {time.perf_counter() - started:.1f}s; every process stopped, {state}")
    return 0


def _wait_caught_up(client: redis.Redis, project: str, last_event: dict[str, str], timeout_s: float = 120.0) -> None:
    """Wait until every session's state in Redis reflects its last replayed event."""
    pending = dict(last_event)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        sessions = list(pending)
        values = cast("list[bytes | None]", client.mget([session_key(project, s) for s in sessions]))
        for sid, raw in zip(sessions, values, strict=True):
            if raw and SessionState.from_json(raw).last_event_id == pending[sid]:
                del pending[sid]
        time.sleep(0.05)
    if pending:
        raise StackError(f"the worker did not catch up with {len(pending)} sessions within {timeout_s:.0f}s")


def _recommend(stub: recommender_pb2_grpc.RecommenderStub, session_id: str) -> recommender_pb2.RecommendResponse:
    return stub.Recommend(recommender_pb2.RecommendRequest(session_id=session_id, k=SHOWN), timeout=2)


def _show_session(stub, producer, client, project, session_id, catalogue, n) -> float:  # type: ignore[no-untyped-def]
    state = SessionState.from_json(client.get(session_key(project, session_id)))
    before = _recommend(stub, session_id)
    item = catalogue.item_ids[random.Random(n).randrange(len(catalogue.item_ids))]
    follower = catalogue.successor_of(item)
    event = click(session_id, item)
    start = time.perf_counter()
    producer.send(session_id, event.to_bytes())
    producer.flush(5)
    wait_for_refresh(client, project, session_id, event.event_id, timeout_s=10)
    latency_ms = (time.perf_counter() - start) * 1000
    after = _recommend(stub, session_id)
    after_ids = [i.item_id for i in after.items]
    rank = after_ids.index(follower) + 1 if follower in after_ids else None
    print(f"\nsession {session_id}: {len(state.items)} items viewed, last {' '.join(state.items[-4:])}")
    print(f"  before  [{before.source}, model {before.model_version}]: {' '.join(i.item_id for i in before.items)}")
    print(f"  click   {item}  (its usual next item is {follower})  -> refreshed in {latency_ms:.1f} ms")
    print(f"  after   [{after.source}, model {after.model_version}]: {' '.join(after_ids)}")
    print(f"  {follower} is {'#' + str(rank) if rank else 'not in the top ' + str(SHOWN)} after the click")
    return latency_ms


def _prepare_search(state_dir: Path) -> None:
    """The encoder (exported once into .streamrec/encoder, then reused) and a search ranker trained on the
    synthetic catalogue's labels into the state dir; the scorer finds both through its settings."""
    from streamrec.search.encoder import default_encoder_dir
    from streamrec.training.search_eval import train_served_ranker
    from streamrec.training.synthetic_catalogue import synthetic_labels, synthetic_products
    from streamrec.training.text_encoder import ensure_encoder

    encoder_dir = ensure_encoder(default_encoder_dir().resolve())
    labels = state_dir / "search-labels.csv"
    synthetic_labels(synthetic_products(), 200, seed=REPLAY_SEED).to_csv(labels, index=False, encoding="latin-1")
    search_dir = train_served_ranker(labels, state_dir / "search", encoder_dir=encoder_dir, log=lambda _: None)
    os.environ["STREAMREC_SERVING_ENCODER_DIR"] = str(encoder_dir)
    os.environ["STREAMREC_SERVING_SEARCH_DIR"] = str(search_dir)


def _show_search(stub, kafka: str, config: SyntheticConfig, session_id: str) -> None:  # type: ignore[no-untyped-def]
    from streamrec.stream.config import CATALOG_TOPIC
    from streamrec.training.synthetic_catalogue import synthetic_products

    products = synthetic_products(config)
    now = int(time.time() * 1000)
    producer = EventProducer(kafka, CATALOG_TOPIC, logger=kafka_logger())
    for p in products:
        producer.send(p.product_id, p.to_product(now).SerializeToString())
    producer.flush(10)
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        probe = stub.Search(recommender_pb2.SearchRequest(query="drill", k=1), timeout=2)
        if probe.catalogue_products >= len(products):
            break
        time.sleep(0.2)
    print(f"\ncatalogue: {len(products)} products published, searchable {time.perf_counter() - started:.1f}s later")
    for query in SEARCHES:
        asked = time.perf_counter()
        reply = stub.Search(recommender_pb2.SearchRequest(query=query, k=5, session_id=session_id), timeout=2)
        took_ms = (time.perf_counter() - asked) * 1000
        print(f"  search {query!r} for session {session_id} [{reply.source}] in {took_ms:.1f} ms:")
        for hit in reply.items:
            print(f"    {hit.item_id}  {hit.title:<55} ${hit.price:>7.2f}  ({hit.reason})")
