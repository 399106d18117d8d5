"""Scenario files: one YAML document that fixes a load test's data, rates, durations, warm-up and target.

Every setting and its default is in the models below; unknown keys are errors, so a typo cannot silently
fall back to a default. Relative paths are relative to the current directory, as on the command line.

    name: smoke
    duration_s: 60            # replay and storefront traffic both run this long
    warmup_s: 5               # measured but left out of the summary figures
    data: {source: yoochoose-100k-test}           # or synthetic (with sessions, seed), or a file path
    replay: {rate: 1000, repeat: true}            # or speedup: 1440
    recommend: {rate: 500, processes: 1}
    freshness: {sample_every: 50}
    target: {kind: local}                         # or {kind: given, kafka: ..., redis: ..., grpc: ..., project: ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamrec.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSection(_Strict):
    source: str = Field("synthetic", description="synthetic, a named source (loadtest/sources.py) or a file path")
    data_dir: Path | None = Field(None, description="real data directory (default ../shared/data)")
    sessions: int = Field(1000, ge=1, description="synthetic sessions")
    seed: int = 7


class ReplaySection(_Strict):
    rate: float | None = Field(None, gt=0, description="events/s")
    speedup: float | None = Field(None, gt=0, description="original pace times this")
    repeat: bool = Field(True, description="start the data over (new session ids) when it ends before the duration")
    keep_timestamps: bool = Field(False, description="send original event times (the worker rejects very old ones)")
    tag: str = Field("auto", description="suffix for session and event ids: auto (per run), none, or a fixed string")

    @model_validator(mode="after")
    def _one_pace(self) -> ReplaySection:
        if (self.rate is None) == (self.speedup is None):
            raise ValueError("give exactly one of replay.rate and replay.speedup")
        return self


class RecommendSection(_Strict):
    rate: float = Field(100.0, ge=0, description="Recommend calls/s offered (open loop); 0 = no storefront traffic")
    processes: int = Field(1, ge=1, le=64, description="load-generator processes sharing the rate")
    max_inflight: int = Field(1000, ge=1, description="calls in flight per process; waiting for a slot is latency")
    k: int = Field(10, ge=1, le=1000)
    deadline_ms: float = Field(1000.0, gt=0)
    window_s: float = Field(30.0, gt=0, description="page views go to sessions with an event this recently")


class FreshnessSection(_Strict):
    sample_every: int = Field(50, ge=1, description="tag about one replayed event in this many")
    tag_events: Literal["first", "quiet"] = Field(
        "first",
        description="first: only a session's first event (unambiguous under any backlog); quiet: also "
        "events whose session was quiet for quiet_s (mid-session events; needs freshness well under quiet_s)",
    )
    quiet_s: float = Field(0.25, ge=0, description="with tag_events: quiet, the quiet time before a tagged event")
    poll_ms: float = Field(5.0, gt=0, description="how often the Recommend probe asks per pending session")
    drain_s: float = Field(5.0, ge=0, description="wait this long after the replay for outstanding probes")
    max_pending: int = Field(64, ge=1, description="probes in flight at once; tagging waits while this many are")
    max_calls_per_s: float = Field(100.0, gt=0, description="budget of the Recommend probe's own calls")


class ModelSection(_Strict):
    registry: Path | None = Field(None, description="model registry; default: a synthetic model trained on start")
    train_dataset: str | None = Field(None, description="when the registry is empty, train on this dataset first")
    train_model: str = "gru4rec"
    train_epochs: int | None = Field(None, ge=1)


class TargetSection(_Strict):
    kind: Literal["local", "given"] = "local"
    # kind: given -- the addresses of a running stack, or the state dir of `streamrec up --detach`
    stack_dir: Path | None = None
    kafka: str | None = None
    redis: str | None = None
    grpc: str | None = None
    project: str | None = None
    # kind: local
    partitions: int = Field(4, ge=1)
    workers: int = Field(1, ge=1)
    model: ModelSection = Field(default_factory=ModelSection)

    @model_validator(mode="after")
    def _addresses(self) -> TargetSection:
        if self.kind == "given" and not self.stack_dir and not all([self.kafka, self.redis, self.grpc, self.project]):
            raise ValueError("target kind 'given' needs stack_dir, or kafka, redis, grpc and project")
        return self


class Scenario(_Strict):
    name: str
    description: str = ""
    duration_s: float = Field(gt=0)
    warmup_s: float = Field(0.0, ge=0)
    data: DataSection = Field(default_factory=DataSection)
    replay: ReplaySection
    recommend: RecommendSection = Field(default_factory=RecommendSection)
    freshness: FreshnessSection = Field(default_factory=FreshnessSection)
    target: TargetSection = Field(default_factory=TargetSection)

    @model_validator(mode="after")
    def _warmup(self) -> Scenario:
        if self.warmup_s >= self.duration_s:
            raise ValueError("warmup_s must be shorter than duration_s")
        return self


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; every problem is a ConfigError naming the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"scenario {path} is not a YAML mapping")
    raw.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"scenario {path}: {problems}") from None


def with_overrides(scenario: Scenario, changes: dict[str, object]) -> Scenario:
    """A validated copy with dotted overrides from the command line, e.g. `{"recommend.rate": 800}`."""
    data = scenario.model_dump()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"overrides {changes}: {exc.errors()[0]['msg']}") from None
