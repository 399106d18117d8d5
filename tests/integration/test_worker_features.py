"""What the worker writes is what Feast's own `get_online_features` reads: session, item and user views."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.probe import wait_for_refresh
from streamrec.events import CanonicalEvent
from streamrec.privacy import Pseudonymizer
from streamrec.stream.producer import EventProducer
from tests.integration.harness import Services

pytestmark = pytest.mark.integration


def test_feast_reads_the_workers_features(services: Services, tmp_path: Path) -> None:
    from streamrec.features.feast_apply import apply

    store = apply(services.project, services.redis_url, tmp_path / "feast").store
    session, user, item = f"s-{uuid.uuid4().hex[:6]}", f"u-{uuid.uuid4().hex[:6]}", f"i-{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    kinds = ["view", "click", "click", "add_to_cart", "purchase"]
    events = [
        CanonicalEvent(
            f"{session}-{n}",
            kind,
            session,
            user,
            item if n % 2 else "other",
            now - 5000 + n,
            category_id="shoes" if n % 2 else "hats",
            price=10.0,
        )
        for n, kind in enumerate(kinds)
    ]
    worker = services.start_worker("worker")
    producer = EventProducer(services.kafka, EVENTS_TOPIC)
    for event in events:
        producer.send(session, event.to_bytes())
    producer.flush(10)
    client = services.client()
    wait_for_refresh(
        client, services.project, session, events[-1].event_id, timeout_s=60, still_worth_waiting=worker.alive
    )

    got = store.get_online_features(
        features=[
            "session_features:recent_items",
            "session_features:last_category",
            "session_features:cart_items",
            "session_features:purchased_items",
            "session_features:event_count",
            "session_features:click_count",
            "session_features:cart_count",
            "session_features:purchase_count",
        ],
        entity_rows=[{"session_id": session}],
    ).to_dict()
    assert got["recent_items"] == [["other", item, "other"]]
    assert got["last_category"] == ["hats"] and got["cart_items"] == [[item]] and got["purchased_items"] == [["other"]]
    assert (got["event_count"], got["click_count"], got["cart_count"], got["purchase_count"]) == ([5], [3], [1], [1])

    items = store.get_online_features(
        features=[
            "item_features:views_1h",
            "item_features:clicks_24h",
            "item_features:carts_24h",
            "item_features:purchases_24h",
            "item_features:conversion_rate",
            "item_features:trending_score",
        ],
        entity_rows=[{"item_id": item}, {"item_id": "other"}],
    ).to_dict()
    assert items["views_1h"] == [0, 1] and items["clicks_24h"] == [1, 1]
    assert items["carts_24h"] == [1, 0] and items["purchases_24h"] == [0, 1]
    assert items["conversion_rate"] == [0.0, 0.5]
    assert items["trending_score"][0] == pytest.approx(1 + 3, rel=1e-3)  # a click and a cart, 1 ms apart

    users = store.get_online_features(
        features=[
            "user_features:top_categories",
            "user_features:top_category_counts",
            "user_features:purchase_history",
        ],
        entity_rows=[{"user_id": Pseudonymizer(None, "k1")(user)}],  # edge-facing data is keyed by pseudonym
    ).to_dict()
    assert users["top_categories"] == [["hats", "shoes"]] and users["top_category_counts"] == [[3, 2]]
    assert users["purchase_history"] == [["other"]]
