"""Settings shared by every part of streamrec (env prefix STREAMREC_): where the broker, Redis and scorer are.

Each package adds its own settings in its own `config.py` with its own prefix (STREAMREC_STREAM_,
STREAMREC_SERVING_, ...); this block holds only what they all must agree on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SCORER_ADDRESS = "127.0.0.1:50051"
EVENTS_TOPIC = "streamrec.events"
DLQ_TOPIC = "streamrec.events.dlq"
# The dead-letter topic's max.message.bytes and the worker producer's largest request: far above what the events
# topic takes (Kafka's default, 1,048,588 bytes), so a record that reached the worker is dead-lettered whole.
DLQ_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_", extra="ignore")

    project: str = Field(
        "streamrec",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",  # Feast rejects dots, and it is embedded raw in keys
        description="namespace of every Redis key and of the consumer group, so tenants and tests never collide",
    )
    kafka_bootstrap: str = Field(DEFAULT_KAFKA_BOOTSTRAP, description="host:port[,host:port] of the Kafka brokers")
    # a secret: it may carry Redis AUTH/ACL credentials (redis://user:password@host:port/db, rediss:// for TLS)
    redis_url: SecretStr = Field(SecretStr(DEFAULT_REDIS_URL), description="redis:// URL of the online store")
    scorer_address: str = Field(DEFAULT_SCORER_ADDRESS, description="host:port of the gRPC scorer(s)")
    events_topic: str = EVENTS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    topic_partitions: int = Field(4, ge=1, description="partitions of the events topic; the worker scale-out unit")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = Field(None, description="CA bundle to verify the brokers (SSL, SASL_SSL)")
    user_id_key: SecretStr | None = Field(None, description="HMAC key for user-id pseudonyms (see privacy.py)")
    user_id_key_id: str = Field("k1", pattern=r"^[A-Za-z0-9]{1,8}$", description="id of that key; change to rotate")


def confluent_security(core: CoreSettings) -> dict[str, str]:
    """The broker security settings as confluent-kafka (librdkafka) configuration."""
    config: dict[str, str] = {"security.protocol": core.kafka_security_protocol}
    if core.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = core.kafka_sasl_mechanism
        config["sasl.username"] = core.kafka_sasl_username
        config["sasl.password"] = core.kafka_sasl_password.get_secret_value() if core.kafka_sasl_password else ""
    if core.kafka_ssl_ca_file and core.kafka_security_protocol.endswith("SSL"):
        config["ssl.ca.location"] = str(core.kafka_ssl_ca_file)
    return config
