"""A process's /metrics HTTP endpoint: one registry on host:port, and a clear error when the port is taken."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

from streamrec.errors import ConfigError


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """/metrics on host:port; loopback unless configured, since it tells anyone who asks about the traffic."""
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics on {host}:{port}: {exc.strerror}") from None
