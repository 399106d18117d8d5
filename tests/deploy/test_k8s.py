"""The Kubernetes manifests (deploy/k8s) hold together: kustomizations, selectors, env references, ports, probes.

No cluster runs here, so the manifests are parsed and cross-checked against each other, the settings classes,
the CLI parser and the scorer's health service names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from streamrec.cli import build_parser
from streamrec.protos import recommender_pb2
from streamrec.security import parse_tokens, scopes_of
from streamrec.serving.config import DEFAULT_PORT
from tests.deploy.settings_env import parse_env, serving_settings, stream_settings, unknown_names

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SCORER_SERVICE = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
Doc = dict[str, Any]


def documents() -> list[tuple[Path, Doc]]:
    return [(path, doc) for path in sorted(K8S.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def objects() -> list[Doc]:
    """Every resource, with the namespace its kustomization gives it."""
    found = []
    for path, doc in documents():
        if doc["kind"] == "Kustomization":
            continue
        namespace = yaml.safe_load((path.parent / "kustomization.yaml").read_text())["namespace"]
        assert doc["kind"] == "Namespace" or doc["metadata"].get("namespace", namespace) == namespace, path
        found.append({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
    return found


def of_kind(objects: list[Doc], kind: str) -> list[Doc]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Doc], kind: str, namespace: str, name: str) -> Doc:
    matches = [
        o for o in of_kind(objects, kind) if o["metadata"]["namespace"] == namespace and o["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"{kind} {namespace}/{name}: {len(matches)} found"
    return matches[0]


def key(obj: Doc) -> str:
    return f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"


def containers(deployment: Doc) -> list[Doc]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def data_of(objects: list[Doc], kind: str, namespace: str, name: str) -> dict[str, str]:
    obj = named(objects, kind, namespace, name)
    return {k: str(v) for k, v in (obj.get("data") or obj.get("stringData") or {}).items()}


def container_env(objects: list[Doc], namespace: str, container: Doc) -> dict[str, str]:
    """The environment a container starts with: envFrom sources in order, then its own `env` on top."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        env.update(data_of(objects, kind, namespace, (source.get("configMapRef") or source["secretRef"])["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        kind = "ConfigMap" if "configMapKeyRef" in item["valueFrom"] else "Secret"
        ref = item["valueFrom"].get("configMapKeyRef") or item["valueFrom"]["secretKeyRef"]
        env[item["name"]] = data_of(objects, kind, namespace, ref["name"])[ref["key"]]  # KeyError: a dangling ref
    return env


def deployments_with_env(objects: list[Doc]) -> Iterator[tuple[Doc, Doc, dict[str, str]]]:
    for deployment in of_kind(objects, "Deployment"):
        for container in containers(deployment):
            yield deployment, container, container_env(objects, deployment["metadata"]["namespace"], container)


def test_every_manifest_is_in_a_kustomization_and_api_versions_are_current() -> None:
    listed = set()
    for path, doc in documents():
        assert doc.get("apiVersion") == API_VERSIONS[doc["kind"]], f"{path}: {doc['kind']}"
        if doc["kind"] == "Kustomization":
            for resource in doc["resources"]:
                target = (path.parent / resource).resolve()
                assert target.exists(), f"{path} lists missing {resource}"
                listed.add(target / "kustomization.yaml" if target.is_dir() else target)
    assert {p.resolve() for p in K8S.rglob("*.yaml")} - listed == {(K8S / "kustomization.yaml").resolve()}


def test_names_are_unique_and_namespaces_exist(objects: list[Doc]) -> None:
    keys = [key(o) for o in objects]
    assert len(keys) == len(set(keys))
    namespaces = {o["metadata"]["name"] for o in of_kind(objects, "Namespace")}
    assert namespaces == {"streamrec-core", "streamrec-edge"}
    assert {o["metadata"]["namespace"] for o in objects} <= namespaces


def test_selectors_match_their_pods(objects: list[Doc]) -> None:
    deployments = of_kind(objects, "Deployment")
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels), key(deployment)
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in of_kind(objects, kind):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            pods = [
                d
                for d in deployments
                if d["metadata"]["namespace"] == obj["metadata"]["namespace"]
                and selects(selector, d["spec"]["template"]["metadata"]["labels"])
            ]
            assert pods, f"{key(obj)} selects no pods"
    for pdb in of_kind(objects, "PodDisruptionBudget"):  # one controller per budget, so maxUnavailable is legal
        selector = pdb["spec"]["selector"]["matchLabels"]
        owners = [d for d in deployments if selects(selector, d["spec"]["template"]["metadata"]["labels"])]
        assert len(owners) == 1, key(pdb)


def test_autoscalers_target_deployments_that_request_cpu(objects: list[Doc]) -> None:
    scaled = set()
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = named(objects, target["kind"], hpa["metadata"]["namespace"], target["name"])
        scaled.add(deployment["metadata"]["name"])
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployment["spec"], f"{key(deployment)}: the autoscaler owns the replica count"
        for container in containers(deployment):  # utilisation is measured against the request
            assert container["resources"]["requests"]["cpu"], key(deployment)
    assert scaled == {"scorer-cpu", "scorer-gpu"}


def test_env_references_exist_and_every_setting_parses(objects: list[Doc]) -> None:
    for deployment, _, env in deployments_with_env(objects):
        assert not unknown_names(env), f"{key(deployment)}: unknown settings {sorted(unknown_names(env))}"
        parse_env(env)


def test_secrets_hold_what_is_secret_and_the_edge_never_sees_the_pseudonym_key(objects: list[Doc]) -> None:
    secret_settings = {
        "STREAMREC_REDIS_URL",
        "STREAMREC_USER_ID_KEY",
        "STREAMREC_STREAM_SCORER_TOKEN",
        "STREAMREC_SERVING_AUTH_TOKENS",
        "STREAMREC_KAFKA_SASL_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
    }
    for config_map in of_kind(objects, "ConfigMap"):
        assert not set(config_map["data"]) & secret_settings, key(config_map)
    for deployment, _, env in deployments_with_env(objects):
        if deployment["metadata"]["namespace"] == "streamrec-edge":
            assert "STREAMREC_USER_ID_KEY" not in env  # raw user ids and their key stay in the core


def test_workers_reach_the_headless_scorer_service_with_a_token_it_accepts(objects: list[Doc]) -> None:
    worker = named(objects, "Deployment", "streamrec-core", "worker")
    env = container_env(objects, "streamrec-core", containers(worker)[0])
    settings = stream_settings(env)
    target = settings.core.scorer_address.removeprefix("dns:///")
    host, port = target.rsplit(":", 1)
    service_name, namespace = host.split(".")[:2]
    assert host == f"{service_name}.{namespace}.svc.cluster.local"
    service = named(objects, "Service", namespace, service_name)
    assert service["spec"]["clusterIP"] == "None"  # headless: DNS returns every pod, round_robin spreads calls
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert settings.replication_factor == 3  # type: ignore[attr-defined]
    assert worker["spec"]["replicas"] <= settings.core.topic_partitions

    scorer = named(objects, "Deployment", namespace, "scorer-cpu")
    scorer_env = container_env(objects, namespace, containers(scorer)[0])
    tokens = parse_tokens(SecretStr(scorer_env["STREAMREC_SERVING_AUTH_TOKENS"]))
    assert settings.scorer_token is not None
    assert "score" in (scopes_of(f"Bearer {settings.scorer_token.get_secret_value()}", tokens) or ())


def test_scorer_ports_and_grpc_probes_agree_with_the_settings(objects: list[Doc]) -> None:
    service = named(objects, "Service", "streamrec-edge", "scorer")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for deployment, container, env in deployments_with_env(objects):
        if deployment["metadata"]["namespace"] != "streamrec-edge":
            continue
        settings = serving_settings(env)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": settings.port, "metrics": settings.metrics_port}
        assert settings.port == DEFAULT_PORT and settings.host == "0.0.0.0"
        assert service_ports["grpc"]["targetPort"] == "grpc" and service_ports["grpc"]["port"] == settings.port
        assert service_ports["metrics"]["port"] == settings.metrics_port
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
        probes = {name: container[name]["grpc"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert all(probe["port"] == settings.port for probe in probes.values())
        assert probes["readinessProbe"]["service"] == SCORER_SERVICE  # the server reports this name
        assert settings.registry_url.startswith("s3://")  # type: ignore[attr-defined]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(settings.registry) in mounts  # a writable emptyDir for the pulled versions
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pre_stop + settings.grace_s < grace  # drain finishes before the kubelet kills


def test_the_gpu_variant_lands_on_gpu_nodes_and_uses_cuda(objects: list[Doc]) -> None:
    gpu = named(objects, "Deployment", "streamrec-edge", "scorer-gpu")
    pod = gpu["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    container = containers(gpu)[0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    settings = serving_settings(container_env(objects, "streamrec-edge", container))
    assert settings.providers == "cuda"
    cpu = containers(named(objects, "Deployment", "streamrec-edge", "scorer-cpu"))[0]
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


def test_worker_ports_probes_and_commands(objects: list[Doc]) -> None:
    parser = build_parser()
    for deployment, container, env in deployments_with_env(objects):
        parser.parse_args(container["args"])
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        if deployment["metadata"]["name"] == "worker":
            settings = stream_settings(env)
            assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": settings.metrics_port}
            assert container["livenessProbe"]["httpGet"]["port"] == "metrics"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert any(str(settings.data_dir).startswith(m) for m in mounts)  # Faust writes under a volume


def test_the_core_names_the_kafka_release_the_dev_stack_runs(objects: list[Doc]) -> None:
    from streamrec.devstack.kafka_dist import kafka_version

    assert data_of(objects, "ConfigMap", "streamrec-core", "streamrec-core")["KAFKA_VERSION"] == kafka_version()


def test_every_client_authenticates_and_its_credentials_come_from_secrets(objects: list[Doc]) -> None:
    """Redis, Kafka and the scorers run elsewhere (operators, a cloud) or here; either way no client goes in open.

    The placeholders stay placeholders: real values are created out of band, never committed.
    """
    for secret in of_kind(objects, "Secret"):
        for name, value in (secret.get("stringData") or {}).items():
            assert "replace-me" in str(value), f"{key(secret)} {name}: a real secret in the repository?"
    for deployment, container, env in deployments_with_env(objects):
        secret_names = set()
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                secret_names |= set(
                    data_of(objects, "Secret", deployment["metadata"]["namespace"], source["secretRef"]["name"])
                )
        redis = urlsplit(env["STREAMREC_REDIS_URL"])
        assert redis.username and redis.password, f"{key(deployment)}: Redis without an ACL user and password"
        assert "STREAMREC_REDIS_URL" in secret_names
        if deployment["metadata"]["namespace"] == "streamrec-edge":
            settings = serving_settings(env)
            assert parse_tokens(settings.auth_tokens), f"{key(deployment)}: a scorer that takes calls without tokens"
            assert "STREAMREC_SERVING_AUTH_TOKENS" in secret_names
            continue
        core = stream_settings(env).core
        assert core.kafka_security_protocol == "SASL_SSL" and core.kafka_sasl_mechanism.startswith("SCRAM-")
        assert core.kafka_sasl_username and "STREAMREC_KAFKA_SASL_PASSWORD" in secret_names
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        ca_dir = str(core.kafka_ssl_ca_file).rsplit("/", 1)[0]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        ca_volume = volumes[mounts[ca_dir]]["secret"]
        assert [item["path"] for item in ca_volume["items"]] == [str(core.kafka_ssl_ca_file).rsplit("/", 1)[1]]
