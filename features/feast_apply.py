"""Programmatic `feast apply`: a repo config for (project, redis URL, state dir), its FeatureStore, and apply.

The same configuration as `features/repo/feature_store.yaml`, built in code so no file has to be rendered and no
environment has to be set; `render_feature_store_yaml` writes that file out for people who want the `feast` CLI.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from feast import FeatureStore, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.registry.registry import RegistryConfig

from streamrec.features.config import check_project, data_dir, redis_connection_string, redis_type, registry_path
from streamrec.features.definitions import build_definitions, ensure_batch_files
from streamrec.features.schema import USER_TTL_S

log = logging.getLogger(__name__)

ENTITY_KEY_SERIALIZATION_VERSION = 3  # features.online encodes keys in exactly this version
DEFAULT_FEAST_KEY_TTL_S = USER_TTL_S  # expiry Feast puts on keys it writes itself: the longest view TTL


@dataclass(frozen=True)
class ApplyResult:
    store: FeatureStore
    applied: list[str]  # names of entities, push sources and feature views now in the registry
    deleted: list[str]  # names of stale feature views and entities removed from the registry


def repo_config(
    project: str, redis_url: str, state_dir: Path, feast_key_ttl_s: int | None = DEFAULT_FEAST_KEY_TTL_S
) -> RepoConfig:
    state_dir = state_dir.absolute()
    return RepoConfig(
        project=check_project(project),
        provider="local",
        registry=RegistryConfig(registry_type="file", path=str(registry_path(state_dir))),
        online_store=RedisOnlineStoreConfig(
            redis_type=redis_type(redis_url),
            connection_string=redis_connection_string(redis_url),
            key_ttl_seconds=feast_key_ttl_s,
        ),
        offline_store={"type": "file"},
        entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION,
        repo_path=state_dir,
    )


def feature_store(
    project: str, redis_url: str, state_dir: Path, feast_key_ttl_s: int | None = DEFAULT_FEAST_KEY_TTL_S
) -> FeatureStore:
    """A FeatureStore over the registry in `state_dir`; `apply` must have run once for it to know any view."""
    config = repo_config(project, redis_url, state_dir, feast_key_ttl_s)
    return FeatureStore(repo_path=str(state_dir.absolute()), config=config)


def apply(
    project: str, redis_url: str, state_dir: Path, feast_key_ttl_s: int | None = DEFAULT_FEAST_KEY_TTL_S
) -> ApplyResult:
    """Create or update the registry like `feast apply`: register our objects, drop views we no longer define."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ensure_batch_files(data_dir(state_dir))
    store = feature_store(project, redis_url, state_dir, feast_key_ttl_s)
    definitions = build_definitions(data_dir(state_dir.absolute()))
    wanted_views = {v.name for v in definitions.feature_views}
    wanted_entities = {e.name for e in definitions.entities}
    # `apply` never deletes on its own; like the CLI we remove what the repository no longer defines.
    stale = [v for v in store.list_feature_views() if v.name not in wanted_views]
    stale_entities = [e for e in store.list_entities() if e.name not in wanted_entities]
    store.apply(definitions.objects(), objects_to_delete=[*stale, *stale_entities], partial=False)
    applied = [e.name for e in definitions.entities] + [s.name for s in definitions.push_sources]
    applied += [v.name for v in definitions.feature_views]
    deleted = [v.name for v in stale] + [e.name for e in stale_entities]
    log.info("feast apply: project %s, %d objects, deleted %s", project, len(applied), deleted or "none")
    return ApplyResult(store, applied, deleted)


def render_feature_store_yaml(
    project: str, redis_url: str, state_dir: Path, feast_key_ttl_s: int | None = DEFAULT_FEAST_KEY_TTL_S
) -> str:
    """The feature_store.yaml equivalent of `repo_config`, for running the `feast` CLI by hand."""
    state_dir = state_dir.absolute()
    online = ["  type: redis", f"  redis_type: {redis_type(redis_url)}"]
    online.append(f"  connection_string: {json.dumps(redis_connection_string(redis_url))}")
    if feast_key_ttl_s:
        online.append(f"  key_ttl_seconds: {feast_key_ttl_s}")
    lines = [
        f"project: {check_project(project)}",
        "provider: local",
        "registry:",
        "  registry_type: file",
        f"  path: {json.dumps(str(registry_path(state_dir)))}",
        "online_store:",
        *online,
        "offline_store:",
        "  type: file",
        f"entity_key_serialization_version: {ENTITY_KEY_SERIALIZATION_VERSION}",
    ]
    return "\n".join(lines) + "\n"
