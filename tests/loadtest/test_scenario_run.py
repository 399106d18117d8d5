"""The smoke scenario end to end against the real local stack the tool starts: broker, Redis, scorer, worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.loadtest.cli import main

pytestmark = pytest.mark.integration


def test_smoke_scenario_runs_and_reports(tmp_path: Path, trained_registry: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "run"
    code = main(["loadtest", "run", "scenarios/smoke.yaml", "--out", str(out), "--registry", str(trained_registry)])
    printed = capsys.readouterr().out
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {
        "report.json",
        "report.md",
        "latency.png",
        "throughput.png",
        "freshness.png",
        "freshness_time.png",
    }
    report = json.loads((out / "report.json").read_text())
    replay, rec, fresh = report["replay"], report["recommend"], report["freshness"]
    assert replay["sent"] == report["plan"]["events"] == 1200  # 200 events/s for 6 s
    assert (replay["delivered"], replay["failed"]) == (1200, 0)
    assert rec["processes"] == 2
    assert rec["calls"] == 500  # 100 calls/s over the 5 s after the 1 s warm-up, from both processes together
    assert rec["ok"] == 500 and rec["codes"] == {"OK": 500}
    assert rec["latency"]["count"] == 500 and rec["latency"]["p50_ms"] > 0
    assert sum(row["issued"] for row in report["timeseries"]) == 600  # the warm-up is plotted too
    assert fresh["redis"]["events"] >= 10 and fresh["redis"]["missing"] <= fresh["redis"]["events"] // 10
    assert fresh["recommend"]["events"] >= 10
    assert set(fresh["recommend"]["probe"]["sources"]) <= {"refreshed", "inline", "popularity"}
    # through Recommend the same event cannot be visible before it is in Redis (same worker write, then an RPC)
    assert fresh["recommend"]["p50_ms"] >= fresh["redis"]["p50_ms"] * 0.8
    assert "smoke: replay 1200 events" in printed and "report:" in printed
