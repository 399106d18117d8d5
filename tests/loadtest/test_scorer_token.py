"""The load tester against a scorer that asks for a bearer token: sent from STREAMREC_LOADTEST_SCORER_TOKEN, the
calls pass; without it every call is refused, and counted by its code rather than hidden."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from streamrec.config import CoreSettings
from streamrec.loadtest.config import LoadtestSettings
from streamrec.loadtest.loadgen import LoadConfig, PagePlan, drive
from streamrec.serving.config import ServingSettings
from streamrec.serving.server import create_server

pytestmark = pytest.mark.integration
PLAN = PagePlan([0.0], ["s1"], ["i1"], window_s=30.0)
TOKEN = "load-secret-1"


async def test_the_load_carries_the_token_a_guarded_scorer_asks_for(
    redis_url: str, project: str, registry_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMREC_LOADTEST_SCORER_TOKEN", TOKEN)
    settings = ServingSettings(
        core=CoreSettings(redis_url=redis_url, project=project),
        port=0,
        registry=registry_copy,
        auth_tokens=json.dumps({TOKEN: ["recommend"]}),
    )
    scorer = await create_server(settings)
    try:
        config = LoadConfig(
            f"127.0.0.1:{scorer.port}", rate=40.0, duration_s=0.5, metadata=LoadtestSettings().scorer_metadata()
        )
        with_token = await drive(config, PLAN)
        without = await drive(dataclasses.replace(config, metadata=()), PLAN)
    finally:
        await scorer.stop(0)
    assert with_token.codes == {"OK": 20}
    assert without.codes == {"UNAUTHENTICATED": 20}
