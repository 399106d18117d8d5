"""The live page and the storefront against a real local stack: over HTTP, then in headless Chromium.

The browser test is the one a person would do: open the storefront, click an item, and watch the
recommendations change because a real click event went through Kafka, the worker and the scorer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrec.config import EVENTS_TOPIC
from streamrec.observe.config import ObserveSettings
from streamrec.observe.web import WebServer, start_web
from streamrec.stream.producer import replay
from streamrec.training.synthetic import SyntheticConfig, generate
from tests.observe.browser import headless_chromium
from tests.observe.conftest import ObservedStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_page(observed_stack: ObservedStack) -> Iterator[WebServer]:
    server = start_web(observed_stack.targets, 0, settings=ObserveSettings(recommend_probes_per_s=20))
    yield server
    server.stop()


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(condition: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not true within {timeout_s}s")


def test_shelf_is_full_on_an_idle_stack(live_page: WebServer) -> None:
    """Before any traffic only the start-up probe trends; the shelf is topped up from the model's favourites."""
    code, catalogue = call(f"{live_page.url}/api/catalogue")
    assert code == 200 and len(catalogue["items"]) == 24
    assert "probe-item" not in {i["item_id"] for i in catalogue["items"]}


def test_live_figures_follow_real_traffic(observed_stack: ObservedStack, live_page: WebServer) -> None:
    events = generate(SyntheticConfig(n_sessions=150, seed=7))
    sender = threading.Thread(target=replay, args=(events, observed_stack.targets.kafka, EVENTS_TOPIC, 200.0))
    sender.start()

    def busy_point() -> dict[str, Any] | None:
        now = call(f"{live_page.url}/api/live")[1]["now"]
        return now if now and (now["produced_per_s"] or 0) > 50 and now["freshness_n"] > 5 else None

    point = wait_for(busy_point)
    sender.join()
    assert point["processed_source"] == "metrics"
    assert point["freshness_p50_ms"] > 0 and point["freshness_p99_ms"] >= point["freshness_p50_ms"]
    assert point["recommend_n"] > 0 and point["recommend_p50_ms"] > 0
    wait_for(lambda: (call(f"{live_page.url}/api/live")[1]["now"]["server_recommend_p99_ms"] or 0) > 0)
    code, status = call(f"{live_page.url}/api/status")
    assert code == 200 and status["ok"], status


def test_click_refreshes_the_session(live_page: WebServer) -> None:
    code, catalogue = call(f"{live_page.url}/api/catalogue")
    assert code == 200 and len(catalogue["items"]) >= 8
    assert "probe-item" not in {i["item_id"] for i in catalogue["items"]}
    session = f"web-{time.time_ns()}"
    code, before = call(f"{live_page.url}/api/sessions/{session}")
    assert code == 200 and before["source"] == "popularity" and before["history"] == []
    item = catalogue["items"][0]["item_id"]
    code, after = call(f"{live_page.url}/api/sessions/{session}/clicks", {"item_id": item})
    assert code == 200, after
    assert after["freshness_ms"] is not None and after["freshness_ms"] > 0
    assert after["history"] == [item] and after["source"] == "refreshed"
    assert [r["item_id"] for r in after["recommendations"]] != [r["item_id"] for r in before["recommendations"]]


def test_storefront_search_finds_published_products_with_titles_and_prices(
    observed_stack: ObservedStack, live_page: WebServer
) -> None:
    from streamrec.stream.config import CATALOG_TOPIC
    from streamrec.stream.producer import EventProducer
    from streamrec.training.synthetic_catalogue import synthetic_products

    products = synthetic_products()[:40]
    producer = EventProducer(observed_stack.addresses.kafka, CATALOG_TOPIC)
    now = int(time.time() * 1000)
    for p in products:
        producer.send(p.product_id, p.to_product(now).SerializeToString())
    producer.flush(10)
    target = products[0]
    url = f"{live_page.url}/api/sessions/searcher/search?q={urllib.request.quote(target.title)}"
    found = wait_for(lambda: (r := call(url))[0] == 200 and r[1]["items"] and r[1])
    first = found["items"][0]
    assert first["item_id"] == target.product_id and first["title"] == target.title
    assert first["price"] == pytest.approx(target.price) and first["reason"] and found["search_ms"] > 0
    assert call(f"{live_page.url}/api/sessions/searcher/search?q=")[0] == 400
    assert call(f"{live_page.url}/api/sessions/searcher/search?q={'x' * 257}")[0] == 400
    assert wait_for(lambda: call(f"{live_page.url}/api/live")[1]["now"]["search_n"] >= 1, 10)


def test_bad_input_is_refused(live_page: WebServer) -> None:
    assert call(f"{live_page.url}/api/sessions/a%20b")[0] == 400
    assert call(f"{live_page.url}/api/sessions/ok/clicks", {"item_id": ""})[0] == 400
    assert call(f"{live_page.url}/api/sessions/ok/clicks", {"item": "x"})[0] == 400


def test_storefront_click_changes_recommendations_in_chromium(live_page: WebServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session = f"browser-{time.time_ns()}"
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(f"{live_page.url}/store?session={session}")
        wait = WebDriverWait(driver, 30)
        recs = driver.find_element(By.ID, "recs")
        wait.until(lambda _: recs.get_attribute("data-source") == "popularity")
        before = recs.get_attribute("data-signature")
        item = driver.find_element(By.CSS_SELECTOR, "#catalogue .item")
        clicked = item.get_attribute("data-item-id")
        item.click()
        wait.until(lambda _: "visible in" in driver.find_element(By.ID, "last-click").text)
        wait.until(lambda _: recs.get_attribute("data-source") == "refreshed")
        assert recs.get_attribute("data-signature") != before
        assert clicked in driver.find_element(By.ID, "history").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#recs .item")) > 0
        driver.save_screenshot(str(tmp_path / "store.png"))

        driver.get(f"{live_page.url}/")
        wait.until(lambda _: driver.find_element(By.ID, "produced").text not in ("", "–"))
        wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, "#badges .badge.up")) == 4)
