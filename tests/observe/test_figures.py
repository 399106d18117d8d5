"""The live page's arithmetic, checked against numbers worked out by hand: quantiles, rates, windows, sampling."""

from __future__ import annotations

import math

import pytest

from streamrec.observe import scrape
from streamrec.observe.live import Inputs, LiveFigures, Rate, Window
from streamrec.observe.tail import TokenBucket

TEXT = """# HELP streamrec_scorer_request_seconds Handler time by RPC
# TYPE streamrec_scorer_request_seconds histogram
streamrec_scorer_request_seconds_bucket{le="0.001",rpc="Recommend"} 50.0
streamrec_scorer_request_seconds_bucket{le="0.002",rpc="Recommend"} 90.0
streamrec_scorer_request_seconds_bucket{le="+Inf",rpc="Recommend"} 100.0
streamrec_scorer_request_seconds_count{rpc="Recommend"} 100.0
streamrec_scorer_request_seconds_sum{rpc="Recommend"} 0.12
streamrec_scorer_request_seconds_bucket{le="0.001",rpc="Score"} 7.0
streamrec_scorer_request_seconds_bucket{le="0.002",rpc="Score"} 7.0
streamrec_scorer_request_seconds_bucket{le="+Inf",rpc="Score"} 7.0
# TYPE streamrec_worker_events_total counter
streamrec_worker_events_total{type="click",outcome="processed"} 30.0
streamrec_worker_events_total{type="view",outcome="processed"} 12.0
streamrec_worker_events_total{type="any",outcome="duplicate"} 3.0
"""


def test_totals_and_buckets_from_metrics_text() -> None:
    samples = scrape.parse(TEXT)
    assert scrape.total(samples, "streamrec_worker_events_total") == 45
    assert scrape.total(samples, "streamrec_worker_events_total", outcome="processed") == 42
    recommend = scrape.buckets(samples, "streamrec_scorer_request_seconds", rpc="Recommend")
    assert recommend == {0.001: 50, 0.002: 90, math.inf: 100}


def test_quantile_interpolates_inside_the_bucket() -> None:
    cumulative = {0.001: 50.0, 0.002: 90.0, math.inf: 100.0}
    # rank 45 of 100 lies in (0, 1 ms]: 45/50 of the way
    assert scrape.quantile(0.45, cumulative) == pytest.approx(0.0009)
    # rank 70: 20 of the 40 observations in (1 ms, 2 ms]
    assert scrape.quantile(0.70, cumulative) == pytest.approx(0.0015)
    # rank 99 is past the last finite bound: that bound is the best answer
    assert scrape.quantile(0.99, cumulative) == pytest.approx(0.002)
    assert math.isnan(scrape.quantile(0.5, {0.001: 0.0, math.inf: 0.0}))


def test_bucket_delta_and_restart() -> None:
    older, newer = {0.001: 10.0, math.inf: 12.0}, {0.001: 15.0, math.inf: 20.0}
    assert scrape.bucket_delta(newer, older) == {0.001: 5.0, math.inf: 8.0}
    restarted = {0.001: 1.0, math.inf: 1.0}
    assert scrape.bucket_delta(restarted, older) == restarted


def test_window_keeps_only_its_span() -> None:
    window = Window(10.0)
    for t, v in [(0, 100.0), (5, 1.0), (9, 2.0), (12, 3.0)]:
        window.add(v, t)
    assert len(window) == 3  # the value at t=0 fell out at t=12
    assert window.percentile(50) == 2.0
    assert Window(1.0).percentile(50) is None


def test_rate_over_its_span_and_after_a_reset() -> None:
    rate = Rate(span_s=5.0)
    assert rate.add(0, 0.0) is None
    assert rate.add(100, 1.0) == 100.0
    for t in range(2, 11):
        last = rate.add(100 * t, float(t))
    assert last == pytest.approx(100.0)
    assert len(rate.readings) <= 7
    assert rate.add(5, 11.0) is None  # counters went down: the process restarted


def test_figures_tick_into_a_series() -> None:
    figures = LiveFigures(window_s=60)
    for i, ms in enumerate([10.0, 20.0, 30.0, 40.0]):
        figures.record_freshness(ms, 100.0 + i)
    figures.record_freshness(None, 104.0)
    figures.record_recommend(2.0, 104.0)
    figures.tick(Inputs(produced_total=0, processed_total=0.0, processed_source="metrics"), 104.0)
    point = figures.tick(
        Inputs(
            produced_total=50,
            processed_total=40.0,
            processed_source="metrics",
            server_buckets={0.001: 1.0, math.inf: 1.0},
        ),
        106.0,
    )
    assert point["produced_per_s"] == 25.0 and point["processed_per_s"] == 20.0
    assert point["freshness_p50_ms"] == 25.0 and point["freshness_n"] == 4
    assert point["recommend_p50_ms"] == 2.0
    assert point["server_recommend_p99_ms"] is None  # one scrape: no interval yet
    snapshot = figures.snapshot()
    assert snapshot["freshness_missing"] == 1 and len(snapshot["series"]) == 2 and snapshot["now"] == point


def test_token_bucket_limits_samples() -> None:
    bucket = TokenBucket(rate=10.0, now=0.0)
    taken = sum(bucket.take(i / 1000) for i in range(1000))  # 1000 offers over one second
    assert 10 <= taken <= 20  # the first second's burst plus the refill
