"""Settings of the scorer (env prefix STREAMREC_SERVING_), with the shared core settings inside."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.config import CoreSettings

DEFAULT_PORT = 50051
MAX_K = 1000
MAX_IDS = 1000  # exclude lists and session histories longer than this are rejected
MAX_ID_CHARS = 256
MAX_SEARCH_K = 100
MAX_QUERY_CHARS = 256
MAX_FILTER_VALUES = 100
MAX_PRICE = 1e12


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_SERVING_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="0 picks a free port")
    processes: int = Field(1, ge=1, le=256, description="scorer processes sharing the port (serving/processes.py)")
    shared_port: bool = Field(
        False, description="join the port a `--processes` parent holds (set by that parent for its children only)"
    )
    registry: Path = Field(Path("models/registry"), description="model registry directory")
    model_version: str = Field("", description="version to serve; empty = the registry's CURRENT")
    providers: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto", description="ONNX Runtime execution providers; a named GPU provider that is missing is an error"
    )
    ort_threads: int = Field(1, ge=1, description="intra-op threads per inference (1 = lowest latency here)")
    redis_timeout_s: float = Field(0.05, gt=0, description="past this the scorer answers without Redis")
    blocking_read_timeout_ms: float = Field(
        3.0, ge=0, le=20, description="a lone request reads Redis in place, waiting at most this (0 = never)"
    )
    max_message_bytes: int = Field(1 << 20, ge=1024)
    max_in_flight: int = Field(256, ge=1, description="concurrent requests; beyond it RESOURCE_EXHAUSTED")
    max_batch: int = Field(64, ge=1, description="most histories in one ONNX Runtime call")
    max_wait_ms: float = Field(0.0, ge=0, le=1.0, description="hold a short batch this long to fill it (0 = never)")
    max_per_category: int = Field(0, ge=0, description="diversity: most items of one category per list (0 = no cap)")
    prebuilt_answers: bool = Field(
        True, description="answer a page view with the bytes the worker stored with its refreshed list, where current"
    )
    reload_interval_s: float = Field(2.0, ge=0, description="how often the registry is checked (0 = never)")
    registry_url: str = Field("", description="remote registry (s3://bucket/prefix) to sync into `registry`; '' = off")
    registry_sync_s: float = Field(10.0, gt=0, description="how often the remote registry's CURRENT is checked")
    registry_wait_s: float = Field(300.0, ge=0, description="at start, how long to wait for a first model version")
    max_connection_age_s: float = Field(
        0.0, ge=0, description="close client connections after this long (0 = never) so clients re-resolve DNS"
    )
    trending_refresh_s: float = Field(1.0, gt=0, description="how often trending items are read from Redis")
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port; 0 disables it")
    metrics_host: str = Field("127.0.0.1", description="interface of /metrics (0.0.0.0: every one, in a container)")
    auth_tokens: SecretStr | None = Field(None, description='JSON {"token": ["recommend", "score"]}; unset = open')
    tls_cert_file: Path | None = Field(None, description="server certificate (PEM); with tls_key_file turns TLS on")
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(None, description="CA of client certificates: turns mutual TLS on")
    grace_s: float = Field(5.0, ge=0, description="drain time for in-flight calls on SIGTERM")
    search: bool = Field(True, description="answer Search from the catalogue in Redis (serving/search.py)")
    search_dir: Path = Field(
        Path(".streamrec/search"), description="the search ranker (`streamrec search train --out`); absent: fused order"
    )
    encoder_dir: Path | None = Field(
        None, description="the exported text encoder; unset: search/encoder.py's default; absent: lexical search only"
    )
    encoder_variant: Literal["fp32", "int8"] = Field("int8", description="which exported encoder answers queries")
    log_level: str = "info"
