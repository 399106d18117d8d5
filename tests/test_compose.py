"""docker-compose.yml agrees with the code: profiles, services, commands, ports, environment, volumes, health.

No Docker engine runs here, so the file is checked by parsing it (variables substituted as compose does) against
the settings classes and the real CLI parser.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamrec.cli import build_parser
from streamrec.config import CoreSettings
from streamrec.devstack.kafka_dist import kafka_version
from streamrec.serving.config import DEFAULT_PORT
from tests.deploy.settings_env import interpolate, parse_env, serving_settings, stream_settings, unknown_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROFILES = {
    "core": {"kafka", "redis", "feast-apply", "minio", "trainer", "model-publish", "worker", "prometheus", "grafana"},
    "core-ha": {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "redis",
        "feast-apply",
        "minio",
        "trainer",
        "model-publish",
        "worker-ha",
        "prometheus",
        "grafana",
    },
    "edge": {"redis-replica", "scorer"},
    "edge-gpu": {"redis-replica", "scorer-gpu"},
}
ONE_SHOTS = {"feast-apply", "trainer", "model-publish"}
DEPLOYMENTS = [["core"], ["core-ha"], ["edge"], ["edge-gpu"], ["core", "edge"], ["core-ha", "edge", "edge-gpu"]]
WORKERS = ["worker", "worker-ha"]
SCORERS = ["scorer", "scorer-gpu"]
HA_BROKERS = ["kafka-1", "kafka-2", "kafka-3"]


def dot_env() -> dict[str, str]:
    """The repository's .env, which compose reads by itself: a link to the package's kafka.env."""
    lines = (ROOT / ".env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services with every ${VARIABLE} from .env or at its default, as `docker compose config` would show them."""
    return dict(interpolate(yaml.safe_load(COMPOSE.read_text()), dot_env())["services"])


def test_every_broker_runs_the_release_the_dev_stack_runs(services: dict[str, Any]) -> None:
    assert (ROOT / ".env").resolve() == (ROOT / "streamrec" / "devstack" / "kafka.env").resolve()
    version = kafka_version()
    for name in ("kafka", *HA_BROKERS):
        assert services[name]["image"] == f"apache/kafka:{version}", name


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def active(services: dict[str, Any], profiles: list[str]) -> set[str]:
    return {name for name, service in services.items() if set(service.get("profiles", [])) & set(profiles)}


def argv(command: str | list[str]) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command)


def test_each_profile_holds_its_services(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("profiles"), f"{name} has no profile: it would start in every deployment"
    for profile, expected in PROFILES.items():
        assert active(services, [profile]) == expected, profile
    assert "KRaft" in COMPOSE.read_text()
    for name in ("kafka", *HA_BROKERS):
        assert services[name]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


@pytest.mark.parametrize("profiles", DEPLOYMENTS, ids="+".join)
def test_dependencies_exist_in_each_deployment(services: dict[str, Any], profiles: list[str]) -> None:
    """A required dependency must be enabled with its dependent; an optional one may be elsewhere (another host)."""
    enabled = active(services, profiles)
    for name in enabled:
        for target, rule in (services[name].get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if rule.get("required", True):
                assert target in enabled, f"{name} needs {target}, which {profiles} does not start"
            expected = "service_completed_successfully" if target in ONE_SHOTS else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {target}"


def test_long_running_services_have_health_checks(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert "healthcheck" not in service and "deploy" not in service, name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} lacks a health check"


def test_commands_are_real_cli_invocations(services: dict[str, Any]) -> None:
    parser = build_parser()
    ours = [name for name, service in services.items() if "build" in service]
    assert set(ours) == {*WORKERS, *SCORERS, *ONE_SHOTS}
    for name in ours:
        service = services[name]
        parser.parse_args(argv(service["command"]))
        health = service.get("healthcheck", {}).get("test", [])
        if health[:2] == ["CMD", "streamrec"]:
            parser.parse_args(health[2:])


def test_every_streamrec_variable_is_a_real_setting_and_parses(services: dict[str, Any]) -> None:
    for name, service in services.items():
        env = env_of(service)
        assert not unknown_names(env), f"{name} sets variables no settings class reads: {sorted(unknown_names(env))}"
        parse_env(env)  # raises on a value a setting rejects


def test_workers_reach_the_brokers_redis_and_scorers(services: dict[str, Any]) -> None:
    for worker, brokers in (("worker", ["kafka"]), ("worker-ha", HA_BROKERS)):
        parsed = stream_settings(env_of(services[worker]))
        core = parsed.core
        hosts = [address.split(":") for address in core.kafka_bootstrap.split(",")]
        assert [host for host, _ in hosts] == brokers
        for host, port in hosts:
            assert f"PLAINTEXT://:{port}" in services[host]["environment"]["KAFKA_LISTENERS"]
            assert services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{host}:{port}"
        assert core.redis_url.get_secret_value().startswith("redis://redis:6379/")
        scorer_host, scorer_port = core.scorer_address.split(":")
        assert scorer_host == "scorer" and int(scorer_port) == DEFAULT_PORT
        assert core.topic_partitions == CoreSettings().topic_partitions
        assert services[worker]["deploy"]["replicas"] <= core.topic_partitions  # more would sit idle
        assert parsed.metrics_port == 9100


def test_scorers_listen_where_clients_and_health_checks_look(services: dict[str, Any]) -> None:
    aliases = services["scorer-gpu"]["networks"]["default"]["aliases"]
    assert "scorer" in aliases  # the workers' scorer:50051 reaches the GPU scorers too
    for name in SCORERS:
        settings = serving_settings(env_of(services[name]))
        assert settings.host == "0.0.0.0" and settings.port == DEFAULT_PORT and settings.metrics_port == 9101
        assert settings.core.redis_url.get_secret_value() == "redis://redis-replica:6379/0"
        assert services[name]["healthcheck"]["test"][-1] == f"localhost:{settings.port}"
        for mapping in services[name]["ports"]:
            assert mapping.rsplit(":", 1)[1] == str(settings.port)
    host_ports = services["scorer"]["ports"][0].split(":")[0]
    first, last = (int(p) for p in host_ports.split("-"))
    assert last - first + 1 == services["scorer"]["deploy"]["replicas"] >= 2  # one host port per replica


def test_gpu_scorer_reserves_an_nvidia_device(services: dict[str, Any]) -> None:
    gpu = services["scorer-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["environment"]["STREAMREC_SERVING_PROVIDERS"] == "cuda"
    assert (ROOT / gpu["build"]["dockerfile"]).is_file()
    assert "resources" not in services["scorer"].get("deploy", {})  # the CPU variant runs anywhere


def test_models_flow_trainer_to_bucket_to_scorers(services: dict[str, Any]) -> None:
    train = build_parser().parse_args(argv(services["trainer"]["command"]))
    publish = build_parser().parse_args(argv(services["model-publish"]["command"]))
    assert str(train.out) == str(publish.registry) == "/models/registry"
    assert "models:/models" in services["trainer"]["volumes"]
    assert "models:/models:ro" in services["model-publish"]["volumes"]
    for name in SCORERS:
        settings = serving_settings(env_of(services[name]))
        assert settings.registry_url == publish.remote  # type: ignore[attr-defined]
        assert str(settings.registry).startswith("/var/lib/streamrec/")  # per container, never a shared volume
        assert "volumes" not in services[name]
    for name in ("model-publish", *SCORERS):
        env = env_of(services[name])
        assert env["FSSPEC_S3_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_ACCESS_KEY_ID"]
    minio = services["minio"]
    assert env_of(minio)["MINIO_ROOT_USER"] == env_of(services["model-publish"])["AWS_ACCESS_KEY_ID"]
    assert "9000:9000" in minio["ports"]


def test_the_ha_core_runs_three_brokers_with_replication_factor_three(services: dict[str, Any]) -> None:
    envs = [services[name]["environment"] for name in HA_BROKERS]
    assert sorted(env["KAFKA_NODE_ID"] for env in envs) == ["1", "2", "3"]
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in zip(HA_BROKERS, envs, strict=True)}
    assert {env["CLUSTER_ID"] for env in envs} == {envs[0]["CLUSTER_ID"]}
    assert len(base64.urlsafe_b64decode(envs[0]["CLUSTER_ID"] + "==")) == 16  # Kafka wants a base64 UUID
    for env in envs:
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[key] == "3", key
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    worker = stream_settings(env_of(services["worker-ha"]))
    assert worker.replication_factor == 3  # type: ignore[attr-defined]
    assert services["kafka"]["environment"]["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_volumes_are_declared_and_bind_mounts_exist() -> None:
    raw = interpolate(yaml.safe_load(COMPOSE.read_text()), dot_env())
    declared = set(raw["volumes"])
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
        if name in ("kafka", *HA_BROKERS):  # the data volume is where the broker writes its log
            assert service["environment"]["KAFKA_LOG_DIRS"] == service["volumes"][0].split(":")[1]


def test_variables_have_defaults_and_edge_hosts_can_point_at_a_remote_core() -> None:
    text = COMPOSE.read_text()
    # every variable has a default, or comes from the .env that compose reads by itself
    assert set(re.findall(r"\$\{([A-Z_]+)\}", text)) <= set(dot_env())
    remote = {**dot_env(), "CORE_REDIS_HOST": "core.example.net", "MODEL_STORE_ENDPOINT": "https://s3.example.net"}
    services = interpolate(yaml.safe_load(text), remote)["services"]
    assert "core.example.net" in services["redis-replica"]["command"]
    assert services["scorer"]["environment"]["FSSPEC_S3_ENDPOINT_URL"] == "https://s3.example.net"


def test_images_hold_every_package_and_run_the_cli() -> None:
    # the package and every folder it links to (streamrec/stream -> ../stream, ...): a link copied without its
    # target would install an empty name
    linked = {p.name for p in (ROOT / "streamrec").iterdir() if p.is_symlink() and p.is_dir()}
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / dockerfile).read_text()
        copied = set(re.findall(r"^COPY (\w+) \1$", text, flags=re.MULTILINE))
        assert copied == {"streamrec", *linked}, dockerfile
        assert 'ENTRYPOINT ["streamrec"]' in text and re.search(r"^USER \w+", text, flags=re.MULTILINE)
        assert 'pip install ".[s3]"' in text  # s3fs for the model registry
    gpu = (ROOT / "Dockerfile.gpu").read_text()
    assert gpu.index("pip uninstall -y onnxruntime") < gpu.index('pip install "onnxruntime-gpu')


def test_prometheus_scrapes_the_metrics_ports_and_grafana_finds_its_dashboards(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    ports = {
        "worker": stream_settings(env_of(services["worker"])).metrics_port,
        "scorer": serving_settings(env_of(services["scorer"])).metrics_port,
    }
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            scraped.update({name: sd["port"] for name in sd["names"]})
    for name in (*WORKERS, *SCORERS):
        assert scraped.get(name) == ports[name.split("-")[0]], f"Prometheus does not scrape {name}'s metrics port"
    grafana_mounts = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    for provider_file in (ROOT / "deploy/grafana/provisioning/dashboards").glob("*.yml"):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            assert provider["options"]["path"] in grafana_mounts, provider_file
