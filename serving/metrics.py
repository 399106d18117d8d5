"""Prometheus metrics of the scorer (names shared with the dashboards in docs/observability.md).

Under `serve --processes N` each process writes its values to files in PROMETHEUS_MULTIPROC_DIR, which the parent
sums into one /metrics (prometheus_client's multiprocess mode, chosen by that variable when this is imported);
the gauges say how their values combine across processes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streamrec.metrics_endpoint import serve_metrics

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
PREBUILT = Counter(
    "streamrec_scorer_prebuilt_answers_total",
    "Recommend answers sent as the bytes the worker stored with a refreshed list (of source=refreshed)",
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "streamrec_scorer_fallbacks_total", "Answers not from the session model, by cause", ["cause"], registry=REGISTRY
)
BATCH = Histogram(
    "streamrec_scorer_inference_batch",
    "Histories per ONNX Runtime call",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
IN_FLIGHT = Gauge(
    "streamrec_scorer_in_flight", "Requests being handled", registry=REGISTRY, multiprocess_mode="livesum"
)
SHED = Counter("streamrec_scorer_shed_total", "Requests refused with RESOURCE_EXHAUSTED", registry=REGISTRY)
# an Info's sample, as a gauge so that every process of a group shows its own (pid label under --processes)
MODEL = Gauge(
    "streamrec_scorer_model_info",
    "1 for the model version and execution providers in use",
    ["version", "providers"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
RELOADS = Counter("streamrec_scorer_model_reloads_total", "Model swaps by outcome", ["outcome"], registry=REGISTRY)
SESSION_READS = Counter(
    "streamrec_scorer_session_reads_total",
    "Session reads from Redis: in_place (a lone request, blocking) or awaited",
    ["path"],
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    "streamrec_scorer_redis_up",
    "1 when the last Redis read succeeded (of a group: 0 when any process's failed)",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)

SEARCH_SOURCES = Counter(
    "streamrec_scorer_search_answers_total", "Search answers by what ordered them", ["source"], registry=REGISTRY
)
SEARCH_FALLBACKS = Counter(
    "streamrec_scorer_search_fallbacks_total",
    "Search answers missing a part (no encoder: lexical only; no ranker: fused order), by the part",
    ["missing"],
    registry=REGISTRY,
)
CATALOGUE_PRODUCTS = Gauge(
    "streamrec_scorer_catalogue_products",
    "Products the search index holds (available or not)",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
CATALOGUE_CHANGES = Counter(
    "streamrec_scorer_catalogue_changes_total", "Catalogue changes applied to the search index", registry=REGISTRY
)
CATALOGUE_LAG = Histogram(
    "streamrec_scorer_catalogue_lag_seconds",
    "A product record's updated time to searchable in this scorer",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5, 60),
)

# the children the hot path uses, resolved once (`labels()` is a locked dict lookup per call)
RECOMMEND_LATENCY = LATENCY.labels("Recommend")
SCORE_LATENCY = LATENCY.labels("Score")
SEARCH_LATENCY = LATENCY.labels("Search")
RECOMMEND_OK = REQUESTS.labels("Recommend", "OK")
SCORE_OK = REQUESTS.labels("Score", "OK")
SEARCH_OK = REQUESTS.labels("Search", "OK")
REFRESHED = SOURCES.labels("refreshed")


def serve(port: int, host: str = "127.0.0.1") -> None:
    serve_metrics(REGISTRY, port, host)


def serving_model(version: str, providers: str) -> None:
    """Mark `version` on `providers` as the one in use, and any other this process served before as not."""
    for labels in list(MODEL._metrics):  # the label sets this process has set
        if labels != (version, providers):
            MODEL.labels(*labels).set(0)
    MODEL.labels(version, providers).set(1)
