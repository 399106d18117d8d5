"""Feast objects (entities, push sources over file batch sources, feature views) built from `streamrec.features.schema`.

Imports Feast, so only `feast apply`, backfills, tests and benchmarks reach this module; the hot paths use
`streamrec.features.online`, which reads the same schema without Feast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.feast_object import FeastObject
from feast.types import Array, Bool, FeastType, Float64, Int64, String

from streamrec.features.schema import VIEWS, Kind, ViewSpec

EVENT_TIMESTAMP = "event_timestamp"  # the timestamp column of pushed frames and of the batch files

FEAST_TYPES: dict[Kind, FeastType] = {
    "string": String,
    "int64": Int64,
    "double": Float64,
    "bool": Bool,
    "string_list": Array(String),
    "int64_list": Array(Int64),
}


ARROW_TYPES: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "string_list": pa.list_(pa.string()),
    "int64_list": pa.list_(pa.int64()),
}


@dataclass(frozen=True)
class Definitions:
    entities: tuple[Entity, ...]
    push_sources: tuple[PushSource, ...]
    feature_views: tuple[FeatureView, ...]

    def objects(self) -> list[FeastObject]:
        """Everything `feast apply` registers, batch sources included, as the CLI's repo scan finds them."""
        batches = [s.batch_source for s in self.push_sources if s.batch_source is not None]
        return [*self.entities, *self.push_sources, *batches, *self.feature_views]


def _entity(spec: ViewSpec) -> Entity:
    return Entity(name=spec.entity, join_keys=[spec.join_key], value_type=ValueType.STRING)


def batch_file(spec: ViewSpec, data_dir: Path) -> Path:
    return data_dir.absolute() / f"{spec.name}.parquet"


def _push_source(spec: ViewSpec, data_dir: Path) -> PushSource:
    # Pushes go straight to the online store; the file only receives offline backfills.
    batch = FileSource(
        name=f"{spec.name}_batch",
        path=str(batch_file(spec, data_dir)),
        timestamp_field=EVENT_TIMESTAMP,
    )
    return PushSource(name=spec.push_source, batch_source=batch)


def _feature_view(spec: ViewSpec, entity: Entity, source: PushSource) -> FeatureView:
    return FeatureView(
        name=spec.name,
        entities=[entity],
        ttl=timedelta(seconds=spec.ttl_s),
        schema=[Field(name=name, dtype=FEAST_TYPES[kind]) for name, kind in spec.features],
        source=source,
        online=True,
        description=spec.description,
    )


def build_definitions(data_dir: Path) -> Definitions:
    """One entity, push source and feature view per view of the schema; batch files under `data_dir`."""
    entities, sources, views = [], [], []
    for spec in VIEWS.values():
        entity = _entity(spec)
        source = _push_source(spec, data_dir)
        entities.append(entity)
        sources.append(source)
        views.append(_feature_view(spec, entity, source))
    return Definitions(tuple(entities), tuple(sources), tuple(views))


def ensure_batch_files(data_dir: Path) -> list[Path]:
    """Create each view's batch file, empty but with its schema, where missing: offline reads then work."""
    created = []
    data_dir.mkdir(parents=True, exist_ok=True)
    for spec in VIEWS.values():
        path = batch_file(spec, data_dir)
        if path.exists():
            continue
        columns = [(spec.join_key, pa.string()), (EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC"))]
        columns += [(name, ARROW_TYPES[kind]) for name, kind in spec.features]
        pq.write_table(pa.schema(columns).empty_table(), path)
        created.append(path)
    return created
