"""Fast online feature writer and reader for Redis, byte-compatible with Feast 0.67's Redis online store.

No Feast import (it costs seconds): keys, hashed field names and values are encoded by `streamrec.features.codec` from
`streamrec.features.schema`, and a test proves the bytes against `FeatureStore.get_online_features` and `push`.

Writing queues commands on a pipeline you own, so it works the same for `redis.Redis` and `redis.asyncio.Redis`
and batches with your other writes:

    layout = FeatureLayout(project)
    pipe = client.pipeline(transaction=False)
    layout.add_row(pipe, "item_features", item_id, {"views_1h": 3, ...}, event_ts_ms)
    pipe.execute()                      # or: await pipe.execute()

Each row is one HSET (the given features and `_ts:{view}`) and one EXPIRE of the view's TTL. Like Feast's
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
    def add_row(self, pipe: Any, view: str, entity_id: str, values: dict[str, Any], event_ts_ms: int) -> None:
        """Queue one row's HSET and EXPIRE on `pipe`; features absent from `values` keep their stored value."""
        layout = self._view(view)
        key = layout.key(entity_id)
        mapping: dict[bytes, bytes] = {layout.ts_field: codec.encode_timestamp_ms(event_ts_ms)}
        writers = layout.writers
        for name, value in values.items():
            try:
                field, encode = writers[name]
            except KeyError:
                raise ConfigError(f"{view} has no feature {name!r}") from None
            mapping[field] = encode(value)
        pipe.hset(key, mapping=mapping)
        # Feast's own reads ignore TTLs on Redis; the expiry bounds memory and drops rows past the view's TTL
        # (counted from the last write, so a replay of old events is not deleted on arrival).
        pipe.expire(key, layout.spec.ttl_s)

    # -- reading -------------------------------------------------------------------------------------------
    def add_reads(self, pipe: Any, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> None:
        """Queue one HMGET per entity on `pipe`; pass the replies, in order, to `decode_rows`."""
        layout = self._view(view)
        fields = layout.plan(features).fields
        key = layout.key
        for entity_id in entity_ids:
            pipe.hmget(key(entity_id), fields)

    def decode_rows(
        self,
        view: str,
        replies: Sequence[Sequence[bytes | None]],
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

    def read_rows(
        self,
        client: Any,
        view: str,
        entity_ids: Sequence[str],
        features: list[str] | None = None,
        with_ts: bool = False,
    ) -> list[dict[str, Any] | None]:
        """One pipelined round trip for many entities of `view` (sync `redis.Redis`)."""
        with client.pipeline(transaction=False) as pipe:
            self.add_reads(pipe, view, entity_ids, features)
            replies = pipe.execute()
        return self.decode_rows(view, replies, features, with_ts)

    async def read_rows_async(
        self,
        client: Any,
        view: str,
        entity_ids: Sequence[str],
        features: list[str] | None = None,
        with_ts: bool = False,
    ) -> list[dict[str, Any] | None]:
        """As `read_rows`, for `redis.asyncio.Redis`."""
        async with client.pipeline(transaction=False) as pipe:
            self.add_reads(pipe, view, entity_ids, features)
            replies = await pipe.execute()
        return self.decode_rows(view, replies, features, with_ts)
