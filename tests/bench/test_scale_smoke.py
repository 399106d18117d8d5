"""`bench scale` end to end on a tiny run of two steps: every event applied and accounted for, every component's
cores measured, Recommend answered at every level (no timing asserts: the figures are the benchmark's)."""

from __future__ import annotations

import json
import math

import pytest

from streamrec.bench.scale import Step, run_scale

pytestmark = pytest.mark.integration
STEP_KEYS = {
    "step",
    "workers",
    "scorer_processes",
    "primaries",
    "events_per_s",
    "redis_commands_per_event",
    "redis_round_trips_per_event",
    "recommend_per_s",
    "recommend_p99_ms",
    "recommend_levels",
    "recommend_errors",
    "cores_ingest",
    "cores_recommend",
    "machine_busy_cores_ingest",
    "events_ratio",
    "recommend_ratio",
}


def test_a_tiny_run_measures_each_step() -> None:
    steps = (Step(1, 1, 1), Step(2, 2, 3))
    result = run_scale(events=600, load_s=0.5, levels=(2, 4), steps=steps)

    json.dumps(result)
    assert result["events"] == 600 and result["broker"].startswith("apache-kafka")
    first, last = result["steps"]
    assert set(first) == set(last) == STEP_KEYS
    assert first["events_ratio"] == 1.0 and first["recommend_ratio"] == 1.0
    for step in result["steps"]:
        assert step["events_per_s"] > 0 and step["recommend_errors"] == 0
        # every event costs Redis commands, and the worker batches them: far fewer round trips than events
        assert step["redis_commands_per_event"] > 1 and 0 < step["redis_round_trips_per_event"] < 1
        assert [level[0] for level in step["recommend_levels"]] == [2, 4]
        assert all(level[1] > 0 and math.isfinite(level[2]) for level in step["recommend_levels"])
    assert {"worker-0", "worker-1", "scorer-process-0", "scorer-process-1", "broker"} <= set(last["cores_ingest"])
    assert sum(name.startswith("redis-") for name in last["cores_ingest"]) == 3  # each primary measured
