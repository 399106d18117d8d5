"""The load tester's settings from the environment (env prefix STREAMREC_LOADTEST_): what a guarded stack asks of it.

Kafka's SASL/SSL settings are the core's (STREAMREC_KAFKA_*, as for every producer) and Redis's password is in its
URL; the scorer's bearer token is the one thing of its own (a compose stack's scorers refuse calls without one).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.security import Metadata, bearer_metadata


class LoadtestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_LOADTEST_", extra="ignore")

    scorer_token: SecretStr | None = Field(
        None, description="bearer token (scope 'recommend') sent with every Recommend of the load and the probe"
    )

    def scorer_metadata(self) -> Metadata:
        return bearer_metadata(self.scorer_token)
