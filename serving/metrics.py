"""Prometheus metrics of the scorer (names shared with the dashboards in docs/observability.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

REGISTRY = CollectorRegistry()
LATENCY = Histogram(
    "streamrec_scorer_request_seconds",
    "Handler time by RPC",
    ["rpc"],
    registry=REGISTRY,
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
)
REQUESTS = Counter(
    "streamrec_scorer_requests_total", "Requests by RPC and status code", ["rpc", "code"], registry=REGISTRY
)
SOURCES = Counter("streamrec_scorer_answers_total", "Recommend answers by source", ["source"], registry=REGISTRY)
FALLBACKS = Counter(
    "streamrec_scorer_fallbacks_total", "Answers not from the session model, by cause", ["cause"], registry=REGISTRY
)
BATCH = Histogram(
    "streamrec_scorer_inference_batch",
    "Histories per ONNX Runtime call",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
IN_FLIGHT = Gauge("streamrec_scorer_in_flight", "Requests being handled", registry=REGISTRY)
SHED = Counter("streamrec_scorer_shed_total", "Requests refused with RESOURCE_EXHAUSTED", registry=REGISTRY)
MODEL = Info("streamrec_scorer_model", "The model version and execution providers in use", registry=REGISTRY)
RELOADS = Counter("streamrec_scorer_model_reloads_total", "Model swaps by outcome", ["outcome"], registry=REGISTRY)
SESSION_READS = Counter(
    "streamrec_scorer_session_reads_total",
    "Session reads from Redis: in_place (a lone request, blocking) or awaited",
    ["path"],
    registry=REGISTRY,
)
REDIS_UP = Gauge("streamrec_scorer_redis_up", "1 when the last Redis read succeeded", registry=REGISTRY)

# the children the hot path uses, resolved once (`labels()` is a locked dict lookup per call)
RECOMMEND_LATENCY = LATENCY.labels("Recommend")
SCORE_LATENCY = LATENCY.labels("Score")
RECOMMEND_OK = REQUESTS.labels("Recommend", "OK")
SCORE_OK = REQUESTS.labels("Score", "OK")


def serve(port: int, host: str = "127.0.0.1") -> None:
    """/metrics on host:port; loopback unless configured, since it tells anyone who asks about the traffic."""
    start_http_server(port, addr=host, registry=REGISTRY)
