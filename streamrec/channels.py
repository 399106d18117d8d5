"""gRPC client options for reaching one or several scorers: round_robin, retries of UNAVAILABLE, health checks."""

from __future__ import annotations

import json
from typing import Any

import grpc

# Recommend and Score only read, so retrying a call that failed before a replica answered (UNAVAILABLE) is safe;
# healthCheckConfig stops calls to a replica that reports NOT_SERVING while it drains.
SCORER_SERVICE_CONFIG: dict[str, Any] = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": "streamrec.v1.Recommender"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    "healthCheckConfig": {"serviceName": "streamrec.v1.Recommender"},
}


def scorer_channel_options() -> list[tuple[str, Any]]:
    return [("grpc.service_config", json.dumps(SCORER_SERVICE_CONFIG)), ("grpc.enable_retries", 1)]


def scorer_target(address: str) -> str:
    """A gRPC target for one or several scorers: "h:p" stays, "h1:p1,h2:p2" (stack.json's `grpc`, the
    STREAMREC_SCORER_ADDRESS list) becomes an ipv4: list that round_robin spreads calls over."""
    address = ",".join(part.strip() for part in address.split(","))
    if "," not in address or ":///" in address or address.startswith(("ipv4:", "ipv6:", "dns:")):
        return address
    return "ipv4:" + address


def scorer_addresses(address: str) -> list[str]:
    """Each scorer of such a list, for checks that must ask every one (health, status)."""
    return [part.strip() for part in address.removeprefix("ipv4:").split(",") if part.strip()]


def insecure_scorer_channel(address: str) -> grpc.Channel:
    """A channel to one or several scorers (round robin, retries of UNAVAILABLE), without TLS."""
    return grpc.insecure_channel(scorer_target(address), options=scorer_channel_options())


def insecure_scorer_aio_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(scorer_target(address), options=scorer_channel_options())
