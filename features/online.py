"""Fast online feature writer and reader for Redis, byte-compatible with Feast 0.67's Redis online store.

No Feast import (it costs seconds): keys, hashed field names and values are encoded by `streamrec.features.codec` from
`streamrec.features.schema`, and a test proves the bytes against `FeatureStore.get_online_features` and `push`.

The layout produces the Redis commands and decodes their replies; the caller runs them with the rest of its
pipeline on streamrec.redis's client (or `execute_sync` for redis-py in tools and tests):

    layout = FeatureLayout(project)
    commands = layout.row_commands("item_features", item_id, {"views_1h": 3, ...}, event_ts_ms)
    await client.execute([*commands, *other_commands])
    rows = await layout.read_rows(client, "item_features", [item_id])

Each row is one HSET (the given features and `_ts:{view}`) and one EXPIRE of the view's TTL (none for a view
without one, such as the catalogue's `product_features`). Like Feast's
`skip_dedup` mode, the last write wins whatever its event time; the stream worker writes a key in event order.
Clients must keep `decode_responses=False`: values are binary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamrec.errors import ConfigError
from streamrec.features import codec
from streamrec.features.schema import VIEWS, ViewSpec
from streamrec.redis import Command, RedisClient

TS_KEY = "_event_ts_ms"  # added to decoded rows when asked for: the row's event time in ms since the epoch


@dataclass(frozen=True)
class _ReadPlan:
    names: tuple[str, ...]
    fields: list[bytes]  # hashed feature fields, then the `_ts:{view}` field last (as Feast reads them)
    decoders: tuple[codec.Decoder, ...]


class _ViewLayout:
    """Everything about one view that does not depend on the row: precomputed once per FeatureLayout."""

    def __init__(self, spec: ViewSpec, project: str) -> None:
        self.spec = spec
        self.key_prefix = codec.entity_key_prefix(spec.join_key)
        self.project_suffix = project.encode()
        self.ts_field = codec.ts_field(spec.name)
        self.writers = {
            name: (codec.hashed_field(spec.name, name), codec.ENCODERS[kind]) for name, kind in spec.features
        }
        self._plans: dict[tuple[str, ...] | None, _ReadPlan] = {}

    def key(self, entity_id: str) -> bytes:
        return codec.redis_key(self.key_prefix, entity_id, self.project_suffix)

    def plan(self, features: Sequence[str] | None) -> _ReadPlan:
        cache_key = None if features is None else tuple(features)
        plan = self._plans.get(cache_key)
        if plan is None:
            names = tuple(name for name, _ in self.spec.features) if cache_key is None else cache_key
            kinds = self.spec.kinds()
            unknown = [n for n in names if n not in kinds]
            if unknown:
                raise ConfigError(f"{self.spec.name} has no features {unknown}")
            fields = [self.writers[n][0] for n in names] + [self.ts_field]
            plan = _ReadPlan(names, fields, tuple(codec.DECODERS[kinds[n]] for n in names))
            self._plans[cache_key] = plan
        return plan


class FeatureLayout:
    """Feast's Redis layout for the views of `streamrec.features.schema` under one project."""

    def __init__(self, project: str, views: Mapping[str, ViewSpec] = VIEWS) -> None:
        self.project = project
        self._views = {name: _ViewLayout(spec, project) for name, spec in views.items()}

    def _view(self, view: str) -> _ViewLayout:
        try:
            return self._views[view]
        except KeyError:
            raise ConfigError(f"unknown feature view {view!r}; known: {sorted(self._views)}") from None

    def redis_key(self, view: str, entity_id: str) -> bytes:
        return self._view(view).key(entity_id)

    # -- writing -------------------------------------------------------------------------------------------
    def row_commands(self, view: str, entity_id: str, values: dict[str, Any], event_ts_ms: int) -> list[Command]:
        """One row's HSET and EXPIRE (none for a view without TTL); features absent from `values` keep their
        stored value."""
        key, hset = self.row_fields(view, entity_id, values, event_ts_ms)
        ttl_s = self._views[view].spec.ttl_s
        # Feast's own reads ignore TTLs on Redis; the expiry bounds memory and drops rows past the view's TTL
        # (counted from the last write, so a replay of old events is not deleted on arrival).
        return [("HSET", key, *hset), ("EXPIRE", key, ttl_s)] if ttl_s else [("HSET", key, *hset)]

    def row_fields(
        self, view: str, entity_id: str, values: dict[str, Any], event_ts_ms: int
    ) -> tuple[bytes, list[bytes]]:
        """A row's key and its HSET field/value pairs, for a caller that writes them itself (a Lua script)."""
        layout = self._view(view)
        hset: list[bytes] = [layout.ts_field, codec.encode_timestamp_ms(event_ts_ms)]
        writers = layout.writers
        for name, value in values.items():
            try:
                field, encode = writers[name]
            except KeyError:
                raise ConfigError(f"{view} has no feature {name!r}") from None
            hset += (field, encode(value))
        return layout.key(entity_id), hset

    # -- reading -------------------------------------------------------------------------------------------
    def read_commands(
        self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None
    ) -> list[Command]:
        """One HMGET per entity; pass the replies, in order, to `decode_rows`."""
        layout = self._view(view)
        fields = layout.plan(features).fields
        key = layout.key
        return [("HMGET", key(entity_id), *fields) for entity_id in entity_ids]

    def decode_rows(
        self,
        view: str,
        replies: Sequence[Any],  # HMGET replies: lists of values or None
        features: Sequence[str] | None = None,
        with_ts: bool = False,
    ) -> list[dict[str, Any] | None]:
        """HMGET replies → one dict per entity (None where the entity has no row), features as Python values."""
        plan = self._view(view).plan(features)
        names, decoders = plan.names, plan.decoders
        rows: list[dict[str, Any] | None] = []
        for reply in replies:
            if not any(reply):
                rows.append(None)
                continue
            row = {name: decode(raw) for name, decode, raw in zip(names, decoders, reply, strict=False)}
            if with_ts:
                row[TS_KEY] = codec.decode_timestamp_ms(reply[-1])
            rows.append(row)
        return rows

    async def read_rows(
        self,
        client: RedisClient,
        view: str,
        entity_ids: Sequence[str],
        features: Sequence[str] | None = None,
        with_ts: bool = False,
    ) -> list[dict[str, Any] | None]:
        """One pipelined round trip for many entities of `view`."""
        replies = await client.execute(self.read_commands(view, entity_ids, features))
        return self.decode_rows(view, replies, features, with_ts)
