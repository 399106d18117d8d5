"""Scenario files: every shipped one validates, mistakes are ConfigErrors naming the field, overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.errors import ConfigError
from streamrec.loadtest.scenario import Scenario, load_scenario, with_overrides

SCENARIOS = sorted(Path("scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.warmup_s < scenario.duration_s


def test_the_yoochoose_scenario_is_what_the_brief_asks() -> None:
    s = load_scenario(Path("scenarios/yoochoose-1000eps.yaml"))
    assert (s.data.source, s.replay.rate, s.recommend.rate, s.duration_s) == ("yoochoose-100k-test", 1000, 500, 60)
    assert s.target.kind == "local"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_unknown_keys_and_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"recommend\.rat"):
        load_scenario(_write(tmp_path, "duration_s: 5\nreplay: {rate: 10}\nrecommend: {rat: 5}\n"))
    with pytest.raises(ConfigError, match=r"exactly one of replay\.rate and replay\.speedup"):
        load_scenario(_write(tmp_path, "duration_s: 5\nreplay: {rate: 10, speedup: 2}\n"))
    with pytest.raises(ConfigError, match="warmup_s must be shorter"):
        load_scenario(_write(tmp_path, "duration_s: 5\nwarmup_s: 5\nreplay: {rate: 10}\n"))
    with pytest.raises(ConfigError, match="needs stack_dir"):
        load_scenario(_write(tmp_path, "duration_s: 5\nreplay: {rate: 10}\ntarget: {kind: given}\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_overrides_replace_dotted_fields_and_revalidate() -> None:
    base = Scenario.model_validate({"name": "x", "duration_s": 10, "replay": {"speedup": 100}})
    changed = with_overrides(base, {"recommend.rate": 800.0, "replay.rate": 50.0, "replay.speedup": None})
    assert (changed.recommend.rate, changed.replay.rate, changed.replay.speedup) == (800.0, 50.0, None)
    with pytest.raises(ConfigError):
        with_overrides(base, {"recommend.processes": 0})
