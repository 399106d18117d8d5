"""A run's report: `report.json` (every figure, the merged HDR histogram, per-second rows), `report.md`, plots.

The JSON is the source of truth; the Markdown, the plots and `loadtest compare` are all made from it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from streamrec.loadtest.freshness import FreshnessReport
from streamrec.loadtest.histograms import Timeline, encode
from streamrec.loadtest.runner import Measured
from streamrec.loadtest.scenario import Scenario
from streamrec.loadtest.schedule import Pace

SEND_LAG_WARN_MS = 5.0  # beyond this the generator, not the server, is the bottleneck


def build_report(scenario: Scenario, measured: Measured, command: str = "") -> dict[str, Any]:
    measured_s = scenario.duration_s - scenario.warmup_s
    load = measured.load
    recommend: dict[str, Any] | None = None
    if load is not None:
        recommend = {
            "offered_per_s": scenario.recommend.rate,
            **load.summary(measured_s),
            "latency_hdr": encode(load.latency),
        }
    target = measured.target
    return {
        "name": scenario.name,
        "description": scenario.description,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "scenario": scenario.model_dump(mode="json"),
        "target": {
            "kind": target.kind,
            "kafka": target.kafka,
            "redis": target.redis,
            "grpc": target.grpc,
            "project": target.project,
            "model_version": target.model_version,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "loadavg": measured.loadavg,
            "cpu": measured.cpu,
        },
        "plan": {
            "data": scenario.data.source,
            "events": measured.planned_events,
            "sessions": measured.planned_sessions,
        },
        "replay": {"pace": Pace(scenario.replay.rate, scenario.replay.speedup).describe(), **measured.replay.summary()},
        "recommend": recommend,
        "freshness": {
            "tagged": measured.tagged,
            "redis": _freshness(measured.fresh_redis, measured.start),
            "recommend": {
                **_freshness(measured.fresh_recommend, measured.start),
                "probe": measured.recommend_probe,
            },
        },
        "timeseries": _timeseries(load.timeline if load else Timeline(), measured.replay.per_second),
    }


def _freshness(fresh: FreshnessReport, start: float) -> dict[str, Any]:
    clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in fresh.summary().items()}  # NaN: no JSON
    return {
        **clean,
        "samples_ms": [round(x, 3) for x in fresh.latencies_ms],
        "sent_s": [round(t - start, 3) for t in fresh.sent_at],
    }


def _timeseries(timeline: Timeline, events_per_second: list[int]) -> list[dict[str, float | int]]:
    rows = timeline.rows()
    for second in range(max(len(rows), len(events_per_second))):
        if second >= len(rows):
            rows.append(
                {
                    "second": second,
                    "issued": 0,
                    "ok": 0,
                    "errors": 0,
                    "p50_ms": 0.0,
                    "p90_ms": 0.0,
                    "p99_ms": 0.0,
                    "max_ms": 0.0,
                }
            )
        rows[second]["events_sent"] = events_per_second[second] if second < len(events_per_second) else 0
    return rows


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.json, report.md and the PNG plots into `out_dir`; returns the paths written."""
    from streamrec.loadtest.plots import write_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=1))
    plots = write_plots(report, out_dir)
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(report, [p.name for p in plots]))
    return [json_path, md_path, *plots]


def read_report(path: Path) -> dict[str, Any]:
    """A report.json, or the run folder holding one."""
    path = path / "report.json" if path.is_dir() else path
    return dict(json.loads(path.read_text()))


def _ms(value: object) -> str:
    return "-" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]


def cpu_line(cpu: dict[str, Any]) -> str:
    """Cores each process used over the run, and what the rest of the machine took meanwhile."""
    parts = ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(cpu["cores"].items()))
    line = f"CPU over the {cpu['window_s']:g} s run, in cores: {parts}"
    if "others_cores" in cpu:
        line += f"; everything else on the machine {cpu['others_cores']:.2f} (busy {cpu['machine_busy_cores']:.2f}"
        line += f" of {cpu['cpus']})"
    return line + "."


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    replay, fresh, rec = report["replay"], report["freshness"], report["recommend"]
    lines = [
        f"{report['name']}: replay {replay['sent']} events at {replay['events_per_s']}/s "
        f"(delivered {replay['delivered']}, failed {replay['failed']}), checksum {replay['checksum'][:16]}"
    ]
    if rec:
        lat = rec["latency"]
        lines.append(
            f"Recommend: {rec['ok_per_s']}/s ok of {rec['offered_per_s']:g}/s offered, errors {rec['errors']}"
            f" {rec['codes']}, latency p50 {_ms(lat['p50_ms'])} p99 {_ms(lat['p99_ms'])} "
            f"max {_ms(lat['max_ms'])} ms"
        )
        if rec["send_lag"]["p99_ms"] > SEND_LAG_WARN_MS:
            lines.append(
                f"warning: generator send lag p99 {rec['send_lag']['p99_ms']} ms: the generator fell behind its "
                "schedule (CPU-starved, or too few --processes); the latencies include that delay"
            )
    if report["machine"].get("cpu", {}).get("cores"):
        lines.append(cpu_line(report["machine"]["cpu"]))
    for path in ("redis", "recommend"):
        f = fresh[path]
        lines.append(
            f"freshness via {path}: {f['events']} probes, {f['missing']} missing, p50 {_ms(f['p50_ms'])} "
            f"p99 {_ms(f['p99_ms'])} max {_ms(f['max_ms'])} ms"
        )
    return lines


def render_markdown(report: dict[str, Any], plots: list[str]) -> str:
    s, machine = report["scenario"], report["machine"]
    load = machine["loadavg"]
    out = [
        f"# Load test `{report['name']}`",
        "",
        report["description"] or "",
        "",
        f"{report['created_at']}: {s['duration_s']:g} s, the first {s['warmup_s']:g} s warm-up (plotted, left out "
        f"of the figures), data `{report['plan']['data']}` ({report['plan']['events']} events, "
        f"{report['plan']['sessions']} sessions planned), against the {report['target']['kind']} stack, model "
        f"`{report['target']['model_version'] or '?'}`. Machine: {machine['cpus']} CPUs, load average "
        f"{', '.join(f'{k} {v[0]:.2f}' for k, v in load.items())}.",
        "",
    ]
    if report["command"]:
        out += ["```sh", report["command"], "```", ""]
    if machine.get("cpu", {}).get("cores"):
        out += [cpu_line(machine["cpu"]), ""]
    rec = report["recommend"]
    if rec:
        lat = rec["latency"]
        out += [
            "## Storefront traffic (Recommend, open loop, latency from the due time)",
            "",
            "| offered/s | ok/s | calls | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | send lag p99 ms |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {rec['offered_per_s']:g} | {rec['ok_per_s']} | {rec['calls']} | {rec['errors']} | "
            f"{_ms(lat['p50_ms'])} | {_ms(lat['p90_ms'])} | {_ms(lat['p99_ms'])} | {_ms(lat['p99.9_ms'])} | "
            f"{_ms(lat['max_ms'])} | {_ms(rec['send_lag']['p99_ms'])} |",
            "",
            f"Status codes: {rec['codes']}; {rec['processes']} generator process(es).",
            "",
        ]
    r = report["replay"]
    out += [
        "## Replay",
        "",
        "| pace | sent | delivered | failed | events/s | send lag p99 ms | checksum (sha256) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {r['pace']} | {r['sent']} | {r['delivered']} | {r['failed']} | {r['events_per_s']} | "
        f"{_ms(r['send_lag_p99_ms'])} | `{r['checksum']}` |",
        "",
    ]
    fresh = report["freshness"]
    out += [
        "## Freshness (event produced -> refreshed recommendations visible)",
        "",
        "| seen through | probes | missing | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path, label in (("redis", "Redis recs key"), ("recommend", "Recommend")):
        f = fresh[path]
        out.append(
            f"| {label} | {f['events']} | {f['missing']} | {_ms(f['p50_ms'])} | {_ms(f['p90_ms'])} | "
            f"{_ms(f['p99_ms'])} | {_ms(f['max_ms'])} |"
        )
    probe = fresh["recommend"]["probe"]
    out += [
        "",
        f"{fresh['tagged']} events tagged; {probe.get('deferred_tags', 0)} tags deferred while "
        f"{report['scenario']['freshness']['max_pending']} probes were pending. The Recommend probe made "
        f"{probe['calls']} calls of its own (errors {probe['errors']}); its answers at the moment of visibility "
        f"came from {probe['sources']}.",
        "",
    ]
    out += [f"![{name}]({name})" for name in plots]
    return "\n".join(out) + "\n"
