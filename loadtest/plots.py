"""The report's PNG plots, drawn from report.json alone with matplotlib's Agg backend (no display needed).

latency.png: Recommend latency percentiles per second (by due time); throughput.png: completed calls, errors
and replayed events per second; freshness.png: the CDF of produce -> visible, via Redis and via Recommend;
freshness_time.png: each probe's freshness against when its event was sent (a growing backlog shows as a ramp).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

DPI = 110
SIZE = (8.0, 4.0)


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    rows = report["timeseries"]
    warmup = float(report["scenario"]["warmup_s"])
    paths = [
        _latency(rows, warmup, out_dir / "latency.png"),
        _throughput(rows, warmup, out_dir / "throughput.png"),
        _freshness(report["freshness"], out_dir / "freshness.png"),
        _freshness_over_time(report["freshness"], warmup, out_dir / "freshness_time.png"),
    ]
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _plain_numbers(axis: Any) -> None:
    """Log axes label 20 and 50 as 20 and 50, not 2x10^1: these are read as milliseconds."""
    formatter = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(formatter)


def _shade_warmup(ax: Any, warmup: float) -> None:
    if warmup > 0:
        ax.axvspan(0, warmup, color="0.9", label="warm-up")


def _latency(rows: list[dict[str, Any]], warmup: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    _shade_warmup(ax, warmup)
    seconds = [r["second"] for r in rows]
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max")):
        values = [r[key] if r["issued"] else np.nan for r in rows]  # latency is bucketed by due second
        ax.plot(seconds, values, label=label, marker=".", linewidth=1)
    if any(r["p99_ms"] for r in rows):
        ax.set_yscale("log")
        _plain_numbers(ax.yaxis)
    ax.set(xlabel="second of the run (by due time)", ylabel="Recommend latency, ms", title="Latency percentiles")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def _throughput(rows: list[dict[str, Any]], warmup: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    _shade_warmup(ax, warmup)
    seconds = [r["second"] for r in rows]
    ax.plot(seconds, [r["ok"] for r in rows], label="Recommend ok/s", marker=".", linewidth=1)
    ax.plot(seconds, [r["errors"] for r in rows], label="Recommend errors/s", marker=".", linewidth=1)
    ax.plot(seconds, [r.get("events_sent", 0) for r in rows], label="events replayed/s", marker=".", linewidth=1)
    ax.set(xlabel="second of the run", ylabel="per second", title="Throughput")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def _freshness(freshness: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    drawn = False
    for key, label in (("redis", "Redis recs key"), ("recommend", "Recommend")):
        samples = np.sort(np.asarray(freshness[key]["samples_ms"], dtype=float))
        if samples.size:
            ax.step(
                samples,
                np.arange(1, samples.size + 1) / samples.size,
                where="post",
                label=f"{label} (n={samples.size})",
            )
            drawn = True
    if drawn:
        ax.set_xscale("log")
        _plain_numbers(ax.xaxis)
        ax.legend(loc="lower right", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no freshness samples", ha="center", va="center", transform=ax.transAxes)
    ax.set(
        xlabel="event produced -> refreshed recommendations visible, ms",
        ylabel="fraction of probes",
        title="Freshness CDF",
        ylim=(0, 1.02),
    )
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _freshness_over_time(freshness: dict[str, Any], warmup: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    _shade_warmup(ax, warmup)
    drawn = False
    for key, label, marker in (("redis", "Redis recs key", "o"), ("recommend", "Recommend", "x")):
        sent, latency = freshness[key].get("sent_s", []), freshness[key]["samples_ms"]
        if sent and len(sent) == len(latency):
            ax.scatter(sent, latency, s=10, marker=marker, label=label, alpha=0.7)
            drawn = True
    if drawn:
        ax.set_yscale("log")
        _plain_numbers(ax.yaxis)
        ax.legend(loc="upper left", fontsize="small")
    ax.set(
        xlabel="second of the run the probed event was sent",
        ylabel="produce -> visible, ms",
        title="Freshness over the run",
    )
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)
