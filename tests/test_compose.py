"""docker-compose.yml agrees with the code: profiles, services, commands, ports, environment, volumes, health.

No Docker engine runs here, so the file is checked by parsing it (variables substituted as compose does) against
the settings classes and the real CLI parser. Its secrets are `${NAME:?...}` variables with no default: the
tests give them random values, as `make compose-secrets` does, and check that compose refuses to start without
them and that nothing is published without authentication (`exposure_problems`, tried on bad files too).
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from streamrec.cli import build_parser
from streamrec.config import CoreSettings
from streamrec.devstack.kafka_dist import kafka_version
from streamrec.security import parse_tokens, scopes_of
from streamrec.serving.config import DEFAULT_PORT
from tests.deploy.settings_env import (
    MissingVariable,
    interpolate,
    parse_env,
    required_variables,
    serving_settings,
    stream_settings,
    unknown_names,
)

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


# The secrets compose refuses to start without, and the message it stops with
SECRETS = {
    "REDIS_PASSWORD",
    "REDIS_REPLICA_PASSWORD",
    "KAFKA_BROKER_PASSWORD",
    "KAFKA_CLIENT_PASSWORD",
    "SCORER_WORKER_TOKEN",
    "SCORER_CLIENT_TOKEN",
    "MODEL_STORE_ACCESS_KEY",
    "MODEL_STORE_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
}
SECRETS_MESSAGE = "set by make compose-secrets, see docs/deployment.md"


def made_secrets() -> dict[str, str]:
    """Random values for every secret, like the file `make compose-secrets` writes."""
    return {name: secrets.token_hex(16) for name in SECRETS}


@pytest.fixture(scope="module")
def compose_env() -> dict[str, str]:
    """What compose reads: .env, and the secrets file passed with a second --env-file."""
    return {**dot_env(), **made_secrets()}


@pytest.fixture(scope="module")
def services(compose_env: dict[str, str]) -> dict[str, Any]:
    """The services with every ${VARIABLE} substituted, as `docker compose config` would show them."""
    return dict(interpolate(yaml.safe_load(COMPOSE.read_text()), compose_env)["services"])


def test_every_broker_runs_the_release_the_dev_stack_runs(services: dict[str, Any]) -> None:
    assert (ROOT / ".env").resolve() == (ROOT / "streamrec" / "devstack" / "kafka.env").resolve()
    version = kafka_version()
    for name in ("kafka", *HA_BROKERS):
        assert services[name]["image"] == f"apache/kafka:{version}", name


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def active(services: dict[str, Any], profiles: list[str]) -> set[str]:
    return {name for name, service in services.items() if set(service.get("profiles", [])) & set(profiles)}


def argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return command if isinstance(command, list) else shlex.split(command)


def option(args: list[str], flag: str) -> str | None:
    """The value after `flag` in an argument list (None when the flag is absent)."""
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def kafka_listeners(spec: str) -> list[tuple[str, str, int]]:
    """KAFKA_LISTENERS as (name, host, port): `SASL://:9092` is ("SASL", "", 9092)."""
    found = []
    for listener in filter(None, spec.split(",")):
        name, _, address = listener.partition("://")
        host, _, port = address.rpartition(":")
        found.append((name, host, int(port)))
    return found


def kafka_protocols(env: dict[str, Any]) -> dict[str, str]:
    """Each listener's security protocol: the map's entry, else the name itself (PLAINTEXT, SASL_SSL, ...)."""
    pairs = filter(None, str(env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")).split(","))
    mapped = dict(pair.split(":", 1) for pair in pairs)
    return {name: mapped.get(name, name) for name, _, _ in kafka_listeners(str(env.get("KAFKA_LISTENERS", "")))}


def published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of every port a service publishes; "" is every address of the host."""
    found: list[tuple[str, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # the long syntax
            host, target = str(entry.get("host_ip", "")), str(entry["target"])
        else:
            parts = str(entry).split("/")[0].split(":")
            host, target = (parts[0] if len(parts) == 3 else ""), parts[-1]
        first, _, last = target.partition("-")
        found.extend((host, port) for port in range(int(first), int(last or first) + 1))
    return found


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
            env = services[host]["environment"]
            (listener,) = [name for name, _, p in kafka_listeners(env["KAFKA_LISTENERS"]) if p == int(port)]
            assert env["KAFKA_ADVERTISED_LISTENERS"] == f"{listener}://{host}:{port}"
            assert kafka_protocols(env)[listener] == core.kafka_security_protocol  # the worker speaks SASL to it
        redis = urlsplit(core.redis_url.get_secret_value())
        assert (redis.hostname, redis.port, redis.path) == ("redis", 6379, "/0")
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
        redis = urlsplit(settings.core.redis_url.get_secret_value())
        assert (redis.hostname, redis.port, redis.path) == ("redis-replica", 6379, "/0")
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


def test_volumes_are_declared_and_bind_mounts_exist(compose_env: dict[str, str]) -> None:
    raw = interpolate(yaml.safe_load(COMPOSE.read_text()), compose_env)
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


def test_variables_have_defaults_and_edge_hosts_can_point_at_a_remote_core(compose_env: dict[str, str]) -> None:
    text = COMPOSE.read_text()
    # every variable has a default, comes from the .env that compose reads by itself, or is a required secret
    assert set(re.findall(r"\$\{([A-Z_]+)\}", text)) <= set(dot_env())
    defaulted = set(re.findall(r"\$\{([A-Z_]+):?-", text))
    assert defaulted == {"CORE_REDIS_HOST", "MODEL_STORE_ENDPOINT"}  # addresses only: no secret has a default
    remote = {**compose_env, "CORE_REDIS_HOST": "core.example.net", "MODEL_STORE_ENDPOINT": "https://s3.example.net"}
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


# -- safe defaults: no secret has a default, nothing is published without authentication --------------------------

LOOPBACK = {"127.0.0.1", "::1", "[::1]"}
METRICS_PORTS = {9100, 9101}  # unauthenticated: Prometheus reaches them on the compose network, nobody else
SASL_PROTOCOLS = {"SASL_PLAINTEXT", "SASL_SSL"}


def kind_of(service: dict[str, Any]) -> str | None:
    image = str(service.get("image", ""))
    if image.startswith("redis:"):
        return "redis"
    if image.startswith("apache/kafka:"):
        return "kafka"
    if image.startswith("minio/"):
        return "minio"
    if "build" in service and argv(service.get("command"))[:1] == ["serve"]:
        return "scorer"
    return None


def redis_problems(name: str, service: dict[str, Any]) -> list[str]:
    args = argv(service.get("command"))
    if args[:1] != ["redis-server"]:
        return [f"{name}: a Redis whose command is not `redis-server ...`, so its password cannot be checked"]
    problems = [] if option(args, "--requirepass") else [f"{name}: Redis without --requirepass"]
    if "--replicaof" in args and not option(args, "--masterauth"):
        problems.append(f"{name}: a Redis replica without --masterauth")
    return problems


def kafka_problems(name: str, service: dict[str, Any]) -> list[str]:
    env = env_of(service)
    protocols = kafka_protocols(env)
    problems = []
    for _, port in published(service):
        listeners = [n for n, _, p in kafka_listeners(env.get("KAFKA_LISTENERS", "")) if p == port]
        for listener in listeners:
            if protocols[listener] not in SASL_PROTOCOLS:
                problems.append(f"{name}: publishes port {port}, listener {listener} speaks {protocols[listener]}")
            elif not env.get("KAFKA_SASL_ENABLED_MECHANISMS"):
                problems.append(f"{name}: publishes the SASL listener {listener} with no SASL mechanism enabled")
    return problems


def exposure_problems(services: dict[str, Any]) -> list[str]:
    """What a compose file exposes without authentication, in any profile; [] when nothing.

    Every Redis needs a password (a replica also the primary's), whether published or not. A published port on any
    host address must be a scorer with bearer tokens, a Kafka SASL listener, a Redis with a password or MinIO with
    its root credentials; anything else (Prometheus, Grafana's anonymous viewers, the MinIO console) may listen on
    the host's loopback only, and the metrics ports are never published.
    """
    problems = []
    for name, service in services.items():
        kind = kind_of(service)
        if kind == "redis":
            problems += redis_problems(name, service)
        ports = published(service)
        if not ports:
            continue
        if kind == "scorer":
            tokens = env_of(service).get("STREAMREC_SERVING_AUTH_TOKENS")
            if not parse_tokens(SecretStr(tokens) if tokens is not None else None):
                problems.append(f"{name}: a published scorer without STREAMREC_SERVING_AUTH_TOKENS")
        if kind == "kafka":
            problems += kafka_problems(name, service)
        env = env_of(service)
        authenticated = kind in ("scorer", "redis", "kafka") or (kind == "minio" and env.get("MINIO_ROOT_PASSWORD"))
        for host, port in ports:
            if port in METRICS_PORTS:
                problems.append(f"{name}: publishes the unauthenticated metrics port {port}")
            elif not authenticated and host not in LOOPBACK:
                problems.append(f"{name}: publishes port {port} on every host address without authentication")
    return problems


def test_nothing_is_published_without_authentication(services: dict[str, Any]) -> None:
    assert exposure_problems(services) == []
    assert {kind_of(s) for s in services.values() if published(s)} >= {"scorer", "redis", "kafka", "minio"}


def _without(args: list[str], flag: str) -> list[str]:
    at = args.index(flag)
    return args[:at] + args[at + 2 :]


def _set_option(args: list[str], flag: str, value: str) -> list[str]:
    at = args.index(flag)
    return [*args[: at + 1], value, *args[at + 2 :]]


BAD_FILES = {
    # name: (what to break, the service the check must name)
    "scorer without tokens": (lambda s: s["scorer"]["environment"].pop("STREAMREC_SERVING_AUTH_TOKENS"), "scorer"),
    "scorer with empty tokens": (
        lambda s: s["scorer"]["environment"].update(STREAMREC_SERVING_AUTH_TOKENS=""),
        "scorer",
    ),
    "gpu scorer with no token in its JSON": (
        lambda s: s["scorer-gpu"]["environment"].update(STREAMREC_SERVING_AUTH_TOKENS="{}"),
        "scorer-gpu",
    ),
    "redis without a password": (lambda s: s["redis"].update(command=["redis-server", "--appendonly", "yes"]), "redis"),
    "redis with an empty password": (
        lambda s: s["redis"].update(command=_set_option(s["redis"]["command"], "--requirepass", "")),
        "redis",
    ),
    "redis started through a shell": (lambda s: s["redis"].update(command="sh -c 'exec redis-server'"), "redis"),
    "replica without masterauth": (
        lambda s: s["redis-replica"].update(command=_without(s["redis-replica"]["command"], "--masterauth")),
        "redis-replica",
    ),
    "replica without its own password": (
        lambda s: s["redis-replica"].update(command=_without(s["redis-replica"]["command"], "--requirepass")),
        "redis-replica",
    ),
    "kafka's published listener mapped to PLAINTEXT": (
        lambda s: s["kafka"]["environment"].update(
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,SASL:PLAINTEXT"
        ),
        "kafka",
    ),
    "kafka with a second, PLAINTEXT listener published": (
        lambda s: (
            s["kafka"]["environment"].update(
                KAFKA_LISTENERS=s["kafka"]["environment"]["KAFKA_LISTENERS"] + ",PLAINTEXT://:9094"
            ),
            s["kafka"]["ports"].append("9094:9094"),
        ),
        "kafka",
    ),
    "kafka's SASL listener with no mechanism": (
        lambda s: s["kafka"]["environment"].pop("KAFKA_SASL_ENABLED_MECHANISMS"),
        "kafka",
    ),
    "a broker's controller listener published": (lambda s: s["kafka-1"].update(ports=["9093:9093"]), "kafka-1"),
    "worker metrics published": (lambda s: s["worker"].update(ports=["127.0.0.1:9100:9100"]), "worker"),
    "prometheus on every address": (lambda s: s["prometheus"].update(ports=["9090:9090"]), "prometheus"),
    "grafana in the long syntax on every address": (
        lambda s: s["grafana"].update(ports=[{"target": 3000, "published": "3000"}]),
        "grafana",
    ),
    "minio without a root password": (lambda s: s["minio"]["environment"].pop("MINIO_ROOT_PASSWORD"), "minio"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_the_exposure_check_fails_on_a_bad_file(services: dict[str, Any], case: str) -> None:
    """The check is only worth something if it fails: break one thing at a time and see it named."""
    break_it, culprit = BAD_FILES[case]
    bad = copy.deepcopy(services)
    break_it(bad)
    problems = exposure_problems(bad)
    assert [p for p in problems if p.startswith(f"{culprit}:")], problems


def test_the_secrets_have_no_default_and_compose_stops_without_each() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    required = required_variables(raw)
    assert set(required) == SECRETS
    assert set(required.values()) == {SECRETS_MESSAGE}  # one message, naming the command that makes them
    given = {**dot_env(), **made_secrets()}
    interpolate(raw, given)
    for name in SECRETS:
        for missing in ({k: v for k, v in given.items() if k != name}, {**given, name: ""}):
            with pytest.raises(MissingVariable) as error:
                interpolate(raw, missing)
            assert error.value.name == name and "make compose-secrets" in str(error.value)


def test_clients_hold_the_credentials_their_servers_check(services: dict[str, Any]) -> None:
    redis_args, replica_args = argv(services["redis"]["command"]), argv(services["redis-replica"]["command"])
    password, replica_password = option(redis_args, "--requirepass"), option(replica_args, "--requirepass")
    assert password != replica_password  # the scorers never learn the primary's password
    assert option(replica_args, "--masterauth") == password
    assert env_of(services["redis"])["REDISCLI_AUTH"] == password  # the health check logs in
    assert env_of(services["redis-replica"])["REDISCLI_AUTH"] == replica_password
    for name in ("feast-apply", *WORKERS):
        url = parse_env(env_of(services[name]))[CoreSettings].redis_url  # type: ignore[attr-defined]
        assert urlsplit(url.get_secret_value()).password == password, name
    for name in SCORERS:
        url = serving_settings(env_of(services[name])).core.redis_url
        assert urlsplit(url.get_secret_value()).password == replica_password, name
    for name in ("trainer", "model-publish"):  # they need neither Redis nor Kafka, so they get neither
        assert not {"STREAMREC_REDIS_URL", "STREAMREC_KAFKA_SASL_PASSWORD"} & set(env_of(services[name])), name

    for name in SCORERS:  # the workers' token has the 'score' scope at every scorer
        tokens = parse_tokens(SecretStr(env_of(services[name])["STREAMREC_SERVING_AUTH_TOKENS"]))
        assert {frozenset({"score"}), frozenset({"recommend", "search"})} == set(tokens.values())
        for worker in WORKERS:
            token = stream_settings(env_of(services[worker])).scorer_token
            assert token is not None
            assert "score" in (scopes_of(f"Bearer {token.get_secret_value()}", tokens) or ())


def test_kafka_clients_log_in_as_a_user_the_brokers_accept(services: dict[str, Any]) -> None:
    for worker, brokers in (("worker", ["kafka"]), ("worker-ha", HA_BROKERS)):
        core = stream_settings(env_of(services[worker])).core
        assert core.kafka_security_protocol == "SASL_PLAINTEXT" and core.kafka_sasl_mechanism == "PLAIN"
        assert core.kafka_sasl_password is not None
        for name in brokers:
            broker = services[name]
            env = env_of(broker)
            script = argv(broker["command"])[-1]
            assert argv(broker["command"])[:2] == ["sh", "-ec"] and script.rstrip().endswith(
                "exec /etc/kafka/docker/run"
            )
            jaas = env["KAFKA_OPTS"].split("java.security.auth.login.config=")[1].split()[0]
            assert f"cat > {jaas} <<EOF" in script  # the file KAFKA_OPTS names is the one written
            users = dict(re.findall(r'user_(\w+)="\$(\w+)"', script))  # user -> the variable holding its password
            assert env[users[core.kafka_sasl_username]] == core.kafka_sasl_password.get_secret_value()
            assert env[users["broker"]] and env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "PLAIN"
            assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == core.kafka_sasl_mechanism
            protocols = kafka_protocols(env)
            assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "SASL_PLAINTEXT"  # brokers log in too
            assert [n for n, p in protocols.items() if p == "PLAINTEXT"] == [env["KAFKA_CONTROLLER_LISTENER_NAMES"]]
            health = broker["healthcheck"]["test"][1]
            config = health.split("--command-config ")[1].split()[0]
            assert f"cat > {config} <<EOF" in script and "security.protocol=SASL_PLAINTEXT" in script
            assert not [k for k in env if k.startswith("KAFKA_") and "PASSWORD" in k]  # the image would render it


def test_make_compose_secrets_writes_every_secret_once(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    target = tmp_path / "state" / "compose.env"
    make = ["make", "-s", "-C", str(ROOT), "compose-secrets", f"COMPOSE_SECRETS={target}"]
    subprocess.run(make, check=True, capture_output=True, text=True)
    pairs = dict(line.split("=", 1) for line in target.read_text().splitlines() if line and not line.startswith("#"))
    assert set(pairs) == SECRETS
    assert all(re.fullmatch(r"[0-9a-f]{16,64}", value) for value in pairs.values()), pairs.keys()
    assert len(set(pairs.values())) == len(pairs)
    assert 3 <= len(pairs["MODEL_STORE_ACCESS_KEY"]) <= 20 and 8 <= len(pairs["MODEL_STORE_SECRET_KEY"]) <= 40  # MinIO
    assert target.stat().st_mode & 0o077 == 0  # the owner's alone
    services = interpolate(yaml.safe_load(COMPOSE.read_text()), {**dot_env(), **pairs})["services"]
    assert exposure_problems(services) == []
    before = target.read_text()
    again = subprocess.run(make, check=True, capture_output=True, text=True)
    assert target.read_text() == before and "kept" in again.stdout  # never rotated under a running stack
