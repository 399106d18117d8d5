"""Settings shared by every part of streamrec (env prefix STREAMREC_): where the broker, Redis and scorer are.

Each package adds its own settings in its own `config.py` with its own prefix (STREAMREC_STREAM_,
STREAMREC_SERVING_, ...); this block holds only what they all must agree on.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SCORER_ADDRESS = "127.0.0.1:50051"
EVENTS_TOPIC = "streamrec.events"
DLQ_TOPIC = "streamrec.events.dlq"


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_", extra="ignore")

    project: str = Field(
        "streamrec",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",  # Feast rejects dots, and it is embedded raw in keys
        description="namespace of every Redis key and of the consumer group, so tenants and tests never collide",
    )
    kafka_bootstrap: str = Field(DEFAULT_KAFKA_BOOTSTRAP, description="host:port[,host:port] of the Kafka brokers")
    redis_url: str = Field(DEFAULT_REDIS_URL, description="redis:// URL of the online store")
    scorer_address: str = Field(DEFAULT_SCORER_ADDRESS, description="host:port of the gRPC scorer(s)")
    events_topic: str = EVENTS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    topic_partitions: int = Field(4, ge=1, description="partitions of the events topic; the worker scale-out unit")
