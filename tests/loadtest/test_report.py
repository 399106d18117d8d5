"""Reports from hand-made measurements: the JSON figures, the Markdown, the three plots, and compare."""

from __future__ import annotations

from pathlib import Path

from streamrec.loadtest.compare import compare_rows, render
from streamrec.loadtest.fleet import FleetResult
from streamrec.loadtest.freshness import FreshnessReport
from streamrec.loadtest.histograms import record_seconds
from streamrec.loadtest.replayer import ReplayStats
from streamrec.loadtest.report import build_report, read_report, summary_lines, write_report
from streamrec.loadtest.runner import Measured
from streamrec.loadtest.scenario import Scenario
from streamrec.loadtest.targets import Target

SCENARIO = Scenario.model_validate({"name": "unit", "duration_s": 3, "warmup_s": 1, "replay": {"rate": 10}})


def _measured(latency_ms: float) -> Measured:
    load = FleetResult(processes=2)
    for second in range(3):
        for _ in range(10):
            load.timeline.record(second + 0.5, second + 0.6, latency_ms / 1000, ok=True)
            if second >= 1:
                record_seconds(load.latency, latency_ms / 1000)
                record_seconds(load.send_lag, 0.0001)
                load.codes["OK"] += 1
    load.codes["UNAVAILABLE"] += 2
    replay = ReplayStats(sent=30, delivered=30, seconds=3.0, checksum="ab" * 32, per_second=[10, 10, 10])
    fresh = FreshnessReport([5.0, 7.0, 9.0], missing=1, sent_at=[101.0, 102.0, 103.0])
    return Measured(
        Target("local", "k:1", "redis://r", "g:1", "p"),
        replay,
        load,
        fresh,
        FreshnessReport([6.0, 8.0]),
        {"calls": 9, "errors": {}, "sources": {"refreshed": 2}},
        4,
        30,
        7,
        {"start": [1.0, 1.0, 1.0], "end": [2.0, 1.5, 1.0]},
        start=100.0,
    )


def test_report_figures_files_and_summary(tmp_path: Path) -> None:
    report = build_report(SCENARIO, _measured(latency_ms=4.0), command="streamrec loadtest run x.yaml")
    rec = report["recommend"]
    assert (rec["calls"], rec["ok"], rec["errors"], rec["codes"]) == (22, 20, 2, {"OK": 20, "UNAVAILABLE": 2})
    assert rec["ok_per_s"] == 10.0  # 20 ok over the 2 s after the warm-up
    assert abs(rec["latency"]["p99_ms"] - 4.0) < 0.01
    assert report["freshness"]["redis"]["events"] == 3 and report["freshness"]["redis"]["missing"] == 1
    assert report["freshness"]["redis"]["sent_s"] == [1.0, 2.0, 3.0]
    assert [r["events_sent"] for r in report["timeseries"]] == [10, 10, 10]
    paths = write_report(report, tmp_path / "run")
    assert {p.name for p in paths} == {
        "report.json",
        "report.md",
        "latency.png",
        "throughput.png",
        "freshness.png",
        "freshness_time.png",
    }
    for png in [p for p in paths if p.suffix == ".png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_report(tmp_path / "run") == report
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "| 10 | 10 | 22 | 2 |" not in markdown  # offered is the scenario's rate (100), not ok/s
    assert "![latency.png](latency.png)" in markdown and "streamrec loadtest run x.yaml" in markdown
    assert any("freshness via redis: 3 probes, 1 missing" in line for line in summary_lines(report))


def test_compare_shows_each_figure_and_which_way_it_moved() -> None:
    a = build_report(SCENARIO, _measured(latency_ms=4.0))
    b = build_report(SCENARIO, _measured(latency_ms=8.0))
    rows = {label: (va, vb, change) for label, va, vb, change in compare_rows(a, b)}
    assert rows["Recommend p99 ms"][2].startswith("up x2.00 (-)")
    assert rows["Recommend ok/s"][2] == "="
    text = render(a, b, "runA", "runB")
    assert "A = runA" in text and "freshness Redis p99 ms" in text
