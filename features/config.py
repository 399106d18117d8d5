"""Settings of the Feast repository (env prefix STREAMREC_FEATURES_) and the redis:// URL → Feast translation.

Nothing here imports Feast, so the CLI and the fast online path can read settings without paying its import.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.config import CoreSettings
from streamrec.errors import ConfigError
from streamrec.features.schema import USER_TTL_S
from streamrec.redis import ClusterTarget, RedisTarget, is_cluster_url

DEFAULT_STATE_DIR = Path(".streamrec/features")
REGISTRY_FILE = "registry.db"
DATA_SUBDIR = "data"  # the push sources' file batch sources live here (only backfills write them)
# Feast accepts letters, digits, '_' and '-' (not first); our Redis keys embed the project as-is, so a name
# Feast rejects cannot be made to work by escaping it.
FEAST_PROJECT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class FeaturesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_FEATURES_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    state_dir: Path = Field(DEFAULT_STATE_DIR, description="holds the Feast registry file and the batch-source data")
    feast_key_ttl_s: int | None = Field(
        USER_TTL_S,
        ge=1,
        description="expiry Feast's own writes (push, materialize) put on keys; a backstop, see docs/features.md",
    )


def check_project(project: str) -> str:
    if not FEAST_PROJECT_PATTERN.match(project):
        raise ConfigError(
            f"project {project!r} is not a valid Feast project name (letters, digits, '_' and '-', not first)"
        )
    return project


def redis_connection_string(redis_url: str) -> str:
    """`redis://[user:pass@]host:port/db` → Feast's `host:port,db=N[,username=..][,password=..][,ssl=true]`;
    `redis+cluster://h1:p1,h2:p2/0` → `h1:p1,h2:p2[,...]`, for `redis_type` redis_cluster."""
    if is_cluster_url(redis_url):
        return ClusterTarget.from_url(redis_url).feast_connection_string()
    return RedisTarget.from_url(redis_url).feast_connection_string()


def redis_type(redis_url: str) -> str:
    """Feast's `redis_type` for the URL: redis_cluster for a Redis Cluster, else redis."""
    return "redis_cluster" if is_cluster_url(redis_url) else "redis"


def registry_path(state_dir: Path) -> Path:
    return state_dir / REGISTRY_FILE


def data_dir(state_dir: Path) -> Path:
    return state_dir / DATA_SUBDIR
