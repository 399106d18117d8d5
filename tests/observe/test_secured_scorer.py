"""Status of a scorer that requires bearer tokens: serving but unreadable without one, fully up with one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamrec.config import CoreSettings
from streamrec.observe.checks import DEGRADED, UP, check_scorer
from streamrec.observe.config import Credentials, Targets
from streamrec.serving.config import ServingSettings
from streamrec.serving.server import create_server

pytestmark = pytest.mark.integration
TOKENS = {"ops-token": ["admin"], "shop-token": ["recommend"]}


async def test_info_needs_the_admin_scope(redis_url: str, project: str, trained_registry: Path) -> None:
    settings = ServingSettings(
        core=CoreSettings(redis_url=SecretStr(redis_url), project=project),
        port=0,
        registry=trained_registry,
        reload_interval_s=0,
        auth_tokens=SecretStr(json.dumps(TOKENS)),
    )
    scorer = await create_server(settings)
    address = f"127.0.0.1:{scorer.port}"
    try:
        for token, state in [("", DEGRADED), ("shop-token", DEGRADED), ("ops-token", UP)]:
            targets = Targets("unused:1", redis_url, address, project, credentials=Credentials(scorer_token=token))
            # the check blocks on gRPC; the scorer runs on this event loop, so the check goes to a thread
            component = await asyncio.to_thread(check_scorer, targets, address, 3.0)
            assert component.state == state, (token, component.summary)
            if state == DEGRADED:
                assert "admin scope" in component.summary
        assert component.details["model_version"]
    finally:
        await scorer.stop(0)
