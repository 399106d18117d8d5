"""Settings of status and the live page (env prefix STREAMREC_OBSERVE_), and where a stack's parts are (`Targets`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.config import EVENTS_TOPIC, CoreSettings, confluent_security
from streamrec.devstack.stack import Member
from streamrec.redis import redact_url

DEFAULT_WEB_PORT = 8088
WORKER_APP_ID = "streamrec-worker"  # stream/config.py's default app id; the consumer group is "{project}.{app_id}"


class ObserveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_OBSERVE_", extra="ignore")

    web_host: str = Field("127.0.0.1", description="interface of the live page; 0.0.0.0 to show it to others")
    web_port: int = Field(DEFAULT_WEB_PORT, ge=0, le=65535, description="0 picks a free port")
    check_timeout_s: float = Field(3.0, gt=0, description="each check of `status` gives up after this")
    freshness_samples_per_s: float = Field(20.0, ge=0, description="tailed events followed to their refresh")
    freshness_timeout_s: float = Field(10.0, gt=0, description="a sample not visible by then counts as missing")
    recommend_probes_per_s: float = Field(5.0, ge=0, description="Recommend calls the page makes to time them")
    window_s: float = Field(60.0, gt=0, description="percentiles on the live page are over this window")
    # a scorer with auth tokens (serving/auth.py): Info needs the 'admin' scope, the page's Recommend 'recommend'
    scorer_token: SecretStr | None = Field(None, description="bearer token for the scorer's Info and Recommend")
    scorer_tls_ca_file: Path | None = Field(None, description="CA of the scorer's certificate: turns TLS on")
    scorer_tls_cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    scorer_tls_key_file: Path | None = None


@dataclass(frozen=True, repr=False)
class Credentials:
    """How to reach a secured stack (Kafka SASL/SSL, scorer token and TLS); its repr shows no secret."""

    kafka: tuple[tuple[str, str], ...] = ()  # confluent-kafka security settings
    scorer_token: str = ""
    scorer_tls: tuple[Path | None, Path | None, Path | None] = (None, None, None)  # CA, client cert, client key

    def __repr__(self) -> str:
        protocol = dict(self.kafka).get("security.protocol", "PLAINTEXT")
        return f"Credentials(kafka={protocol}, token={bool(self.scorer_token)}, tls={self.scorer_tls[0] is not None})"

    def kafka_config(self, **config: Any) -> dict[str, Any]:
        return {**config, **dict(self.kafka)}

    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        from streamrec.security import bearer_metadata

        return bearer_metadata(self.scorer_token)

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        from streamrec.security import channel_credentials

        ca, cert, key = self.scorer_tls
        return channel_credentials(ca, cert, key) if ca is not None else None

    def channel(self, address: str) -> grpc.Channel:
        credentials = self.grpc_credentials()
        return grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)

    def aio_channel(self, address: str) -> grpc.aio.Channel:
        credentials = self.grpc_credentials()
        return grpc.aio.secure_channel(address, credentials) if credentials else grpc.aio.insecure_channel(address)

    def scorers_aio_channel(self, addresses: str) -> grpc.aio.Channel:
        """One channel over every scorer of a comma-separated list, balanced as the worker's (round robin,
        retries of UNAVAILABLE, health-checked); `aio_channel` is for asking one scorer about itself."""
        from streamrec.channels import scorer_channel_options, scorer_target

        target, options = scorer_target(addresses), scorer_channel_options()
        credentials = self.grpc_credentials()
        if credentials:
            return grpc.aio.secure_channel(target, credentials, options=options)
        return grpc.aio.insecure_channel(target, options=options)


def credentials_from_environment(
    core: CoreSettings | None = None, settings: ObserveSettings | None = None
) -> Credentials:
    core, settings = core or CoreSettings(), settings or ObserveSettings()
    token = settings.scorer_token.get_secret_value() if settings.scorer_token else ""
    tls = (settings.scorer_tls_ca_file, settings.scorer_tls_cert_file, settings.scorer_tls_key_file)
    return Credentials(tuple(sorted(confluent_security(core).items())), token, tls)


def redact(url: str) -> str:
    """A URL fit to print: its password (Redis AUTH) replaced by ***."""
    return redact_url(url)


@dataclass(frozen=True)
class Targets:
    """Addresses of one stack's parts; metrics endpoints are host:port of Prometheus /metrics, possibly none."""

    kafka: str
    redis: str = field(repr=False)  # may carry a password (Redis AUTH): print it through `redact`
    grpc: str  # one scorer's host:port or several, comma-separated
    project: str = "streamrec"
    worker_metrics: tuple[str, ...] = ()
    scorer_metrics: tuple[str, ...] = ()
    # the processes a stack.json lists (`streamrec up`): status names each; none when given by flags or env
    workers: tuple[Member, ...] = ()
    scorers: tuple[Member, ...] = ()
    redis_cluster_nodes: tuple[str, ...] = ()  # host:port of each shard of a Redis Cluster: status checks each
    topic: str = EVENTS_TOPIC
    partitions: int = 4  # expected partitions of the topic, used only when the broker cannot say
    registry: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    credentials: Credentials = field(default_factory=Credentials, compare=False)

    @property
    def group(self) -> str:
        return f"{self.project}.{WORKER_APP_ID}"


def targets_from_stack(data: dict[str, Any], credentials: Credentials | None = None) -> Targets:
    """Targets from the content of `stack.json` (`streamrec up`); optional keys of newer stacks are honoured.

    `metrics` (service name -> host:port) is optional so that status also works on a stack started before
    metrics ports were written there; names starting with "worker" are workers, "scorer" scorers.
    """
    metrics: dict[str, str] = dict(data.get("metrics") or {})
    return Targets(
        workers=tuple(_member(m) for m in data.get("workers") or ()),
        scorers=tuple(_member(m) for m in data.get("scorers") or ()),
        redis_cluster_nodes=tuple(str(n) for n in data.get("redis_cluster_nodes") or ()),
        kafka=str(data["kafka"]),
        redis=str(data["redis"]),
        grpc=str(data["grpc"]),
        project=str(data.get("project", "streamrec")),
        worker_metrics=tuple(v for k, v in sorted(metrics.items()) if k.startswith("worker")),
        scorer_metrics=tuple(v for k, v in sorted(metrics.items()) if k.startswith("scorer")),
        partitions=int(data.get("partitions", 4)),
        registry=str(data.get("registry", "")),
        extra={k: data[k] for k in ("web", "pid", "state_dir") if k in data},
        credentials=credentials or Credentials(),
    )


def _member(data: dict[str, Any]) -> Member:
    return Member(
        name=str(data["name"]),
        pid=int(data.get("pid", 0)),
        metrics=str(data.get("metrics", "")),
        address=str(data.get("address", "")),
        restarts=int(data.get("restarts", 0)),
    )


def with_current_members(targets: Targets) -> Targets:
    """`targets` with the workers and scorers its stack file lists now: `streamrec up` rewrites the file with the
    new pid when it restarts one, and the live page keeps its Targets for as long as it runs."""
    from streamrec.devstack.stack import STACK_FILE

    state_dir = targets.extra.get("state_dir")
    if not state_dir or not (targets.workers or targets.scorers):
        return targets
    try:
        now = targets_from_stack(json.loads((Path(state_dir) / STACK_FILE).read_text()))
    except (OSError, ValueError, KeyError):  # the stack is stopping, or the file is being replaced
        return targets
    return dataclasses.replace(targets, workers=now.workers, scorers=now.scorers)


def read_stack_file(state_dir: Path) -> Targets:
    """Targets of the stack whose supervisor wrote `state_dir/stack.json` (read as plain JSON: any version)."""
    from streamrec.devstack.stack import STACK_FILE
    from streamrec.errors import ConfigError

    path = state_dir / STACK_FILE
    try:
        return targets_from_stack(json.loads(path.read_text()), credentials_from_environment())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: no stack is running there (start one: streamrec up --detach)") from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{path} is not a stack file: {exc}") from None


def targets_from_environment(core: CoreSettings | None = None, **overrides: Any) -> Targets:
    """Targets from STREAMREC_* (the settings the worker and scorer read), with explicit values on top."""
    core = core or CoreSettings()
    base: dict[str, Any] = {
        "kafka": core.kafka_bootstrap,
        "redis": core.redis_url.get_secret_value(),
        "grpc": core.scorer_address,
        "project": core.project,
        "topic": core.events_topic,
        "partitions": core.topic_partitions,
        "credentials": credentials_from_environment(core),
    }
    base.update({k: v for k, v in overrides.items() if v not in (None, "", ())})
    return Targets(**base)
