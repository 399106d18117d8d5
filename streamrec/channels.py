"""gRPC client options for reaching one or several scorers: round_robin, retries of UNAVAILABLE, health checks."""

from __future__ import annotations

import json
from typing import Any

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
