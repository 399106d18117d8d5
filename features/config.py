"""Settings of the Feast repository (env prefix STREAMREC_FEATURES_) and the redis:// URL → Feast translation.

Nothing here imports Feast, so the CLI and the fast online path can read settings without paying its import.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.config import CoreSettings
from streamrec.errors import ConfigError
from streamrec.features.schema import USER_TTL_S

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
    """`redis://[user:pass@]host:port/db` → Feast's `host:port,db=N[,username=..][,password=..][,ssl=true]`."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"expected a redis:// or rediss:// URL with a host, got {redis_url!r}")
    db_text = parts.path.lstrip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    if not db_text.isdigit():
        raise ConfigError(f"database in {redis_url!r} must be a number")
    if ":" in parts.hostname:  # Feast splits host from port on ':' and so cannot take an IPv6 address
        raise ConfigError(f"Feast's Redis connection string cannot carry the IPv6 host in {redis_url!r}")
    items = [f"{parts.hostname}:{parts.port or 6379}", f"db={int(db_text)}"]
    if parts.username:
        items.append(f"username={unquote(parts.username)}")
    if parts.password:
        items.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        items.append("ssl=true")
    # Feast splits the string on ',' and '=' without any quoting, so such characters cannot be passed through.
    if any("," in item for item in items) or any(item.count("=") > 1 for item in items[1:]):
        raise ConfigError("Feast's Redis connection string cannot carry ',' or '=' inside a user name or password")
    return ",".join(items)


def registry_path(state_dir: Path) -> Path:
    return state_dir / REGISTRY_FILE


def data_dir(state_dir: Path) -> Path:
    return state_dir / DATA_SUBDIR
