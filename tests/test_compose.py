"""docker-compose.yml agrees with the code: services, commands, ports, environment and health checks.

No Docker engine runs here, so the file is checked by parsing it against the settings classes and the CLI.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from features.config import FeaturesSettings
from serving.config import DEFAULT_PORT, ServingSettings
from stream.config import StreamSettings
from streamrec.cli import build_parser
from streamrec.config import CoreSettings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
SETTINGS: list[type[BaseSettings]] = [CoreSettings, StreamSettings, ServingSettings, FeaturesSettings]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def known_env_names() -> set[str]:
    names = set()
    for cls in SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields if field != "core"}
    return names


def test_services_exist_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "worker", "scorer"} <= set(services)
    for name in ("kafka", "redis", "scorer"):
        assert services[name]["healthcheck"]["test"], f"{name} lacks a health check"
    assert "KRaft" in COMPOSE.read_text() and services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]


def test_every_streamrec_variable_is_a_real_setting_and_valid(compose: dict[str, Any]) -> None:
    known = known_env_names()
    for name, service in compose["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("STREAMREC_")}
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"
        for cls in SETTINGS:  # every value must parse
            prefix = cls.model_config.get("env_prefix", "")
            own = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix) and k.count("_") >= 1}
            cls(**{k: v for k, v in own.items() if k in cls.model_fields and k != "core"})


def test_addresses_point_at_services_and_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["worker"]["environment"]
    kafka_host, kafka_port = env["STREAMREC_KAFKA_BOOTSTRAP"].split(":")
    assert kafka_host in services
    assert f"PLAINTEXT://:{kafka_port}" in services["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert env["STREAMREC_REDIS_URL"].startswith("redis://redis:6379")
    scorer_host, scorer_port = env["STREAMREC_SCORER_ADDRESS"].split(":")
    assert scorer_host == "scorer" and int(scorer_port) == DEFAULT_PORT
    assert services["scorer"]["environment"]["STREAMREC_SERVING_PORT"] == str(DEFAULT_PORT)
    assert f"{DEFAULT_PORT}:{DEFAULT_PORT}" in services["scorer"]["ports"]
    assert env["STREAMREC_TOPIC_PARTITIONS"] == str(CoreSettings().topic_partitions)


def test_commands_are_real_cli_invocations(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for service in compose["services"].values():
        if "build" not in service:
            continue
        command = service["command"]
        parser.parse_args(command if isinstance(command, list) else shlex.split(command))
        health = service.get("healthcheck", {}).get("test", [])
        if health[:2] == ["CMD", "streamrec"]:
            parser.parse_args(health[2:])


def test_model_volume_is_shared_between_trainer_and_scorer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    registry = services["scorer"]["environment"]["STREAMREC_SERVING_REGISTRY"]
    assert registry.startswith("/models") and "models:/models:ro" in services["scorer"]["volumes"]
    assert "/models/registry" in services["trainer"]["command"]
