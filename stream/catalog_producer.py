"""Publish a catalogue export (CSV or Parquet) to the catalogue topic: one Product per row, keyed by product id.

Columns are found by name through a mapping (Product field -> column; each defaults to the field's own name).
`product_id` and `title` must be there; without an `available` column every product is available, without an
`updated_ms` column (or in an empty cell) the time is now. A row the worker would dead-letter is refused here
instead, by the same rules (stream/catalog.py `decode_product`), counted under its reason and reported; none is
dropped without a word. The topic is created compacted when it does not exist yet, before anything is produced
(a broker that creates topics on first use would make it an ordinary one).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streamrec.errors import ConfigError, DataError, InvalidEvent
from streamrec.protos.catalog_pb2 import Product
from streamrec.stream.catalog import CatalogLimits, decode_product
from streamrec.stream.producer import EventProducer

FIELDS = ("product_id", "title", "brand", "category", "price", "available", "updated_ms")
REQUIRED = ("product_id", "title")
TRUE = {"1", "true", "t", "yes", "y"}
FALSE = {"0", "false", "f", "no", "n"}
MAX_EXAMPLES = 5  # refused rows quoted in the summary


@dataclass
class PublishResult:
    rows: int = 0
    produced: int = 0
    failed: int = 0  # produced but not acknowledged by the broker
    refused: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first refused: "row N: reason: detail" (N from 1)
    errors: list[str] = field(default_factory=list)  # the first delivery errors

    @property
    def ok(self) -> bool:
        return self.produced == self.rows and self.failed == 0

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "produced": self.produced,
            "refused": sum(self.refused.values()),
            "refused_by_reason": dict(self.refused),
            "failed": self.failed,
            "examples": self.examples,
            "errors": self.errors,
        }


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`field=column` pairs (from `--map`) over the defaults: every field mapped to the column of its own name."""
    mapping = {name: name for name in FIELDS}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not column:
            raise ConfigError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. product_id=product_uid")
        if name not in FIELDS:
            raise ConfigError(f"--map {pair!r}: {name!r} is not a Product field ({', '.join(FIELDS)})")
        mapping[name] = column
    return mapping


def read_export(path: Path) -> pd.DataFrame:
    """The export's rows, every CSV cell as text (ids such as 00042 stay as written)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ",")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from exc
    raise DataError(f"{path}: not a catalogue export (expected .csv, .tsv or .parquet)")


def products(
    frame: pd.DataFrame, mapping: Mapping[str, str], now_ms: int, limits: CatalogLimits
) -> Iterator[Product | InvalidEvent]:
    """Each row's Product, validated as the worker validates it (with its `limits`), or the InvalidEvent that
    refuses it. A DataError at once when a required column is missing."""
    missing = [f"{name} (column {mapping[name]!r})" for name in REQUIRED if mapping[name] not in frame.columns]
    if missing:
        raise DataError(f"the export has no {', '.join(missing)}; columns: {list(frame.columns)}; map with --map")
    columns = {name: mapping[name] for name in FIELDS if mapping[name] in frame.columns}
    return _products(frame[list(columns.values())], list(columns), now_ms, limits)


def _products(frame: pd.DataFrame, names: list[str], now_ms: int, limits: CatalogLimits) -> Iterator[Any]:
    for row in frame.itertuples(index=False, name=None):
        try:
            product = row_product(dict(zip(names, row, strict=True)), now_ms)
            raw = product.SerializeToString()
            change = decode_product(product.product_id.encode(), raw, now_ms, now_ms, limits)
        except InvalidEvent as refused:
            yield refused
            continue
        yield Product.FromString(change.product or b"")


def row_product(values: Mapping[str, Any], now_ms: int) -> Product:
    product = Product(
        product_id=_text(values.get("product_id")),
        title=_text(values.get("title")),
        brand=_text(values.get("brand")),
        category=_text(values.get("category")),
        available=_available(values.get("available")),
        updated_ms=_updated_ms(values.get("updated_ms"), now_ms),
    )
    price = _number("price", values.get("price"))
    if price is not None:
        product.price = price
    return product


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT or value == ""


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _number(name: str, value: Any) -> float | None:
    if _missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidEvent("bad_value", f"{name} {value!r} is not a number") from None


def _available(value: Any) -> bool:
    if _missing(value):
        return True
    if isinstance(value, bool | int) or (isinstance(value, float) and value.is_integer()):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise InvalidEvent("bad_value", f"available {value!r} is not true/false, yes/no or 1/0")


def _updated_ms(value: Any, now_ms: int) -> int:
    if _missing(value):
        return now_ms
    if isinstance(value, pd.Timestamp):
        return int(value.timestamp() * 1000)
    number = _number("updated_ms", value)
    if number is None or not number.is_integer():
        raise InvalidEvent("bad_value", f"updated_ms {value!r} is not a whole number of milliseconds")
    return int(number)


def ensure_topic(
    bootstrap: str, topic: str, partitions: int, replication: int = 1, logger: logging.Logger | None = None
) -> bool:
    """Create `topic` compacted (key = product id) unless it exists; whether it was created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamrec.config import CoreSettings, confluent_security

    config: dict[str, Any] = {"bootstrap.servers": bootstrap, **confluent_security(CoreSettings())}
    if logger is not None:
        config["logger"] = logger
    admin = AdminClient(config)
    new = NewTopic(topic, partitions, replication, config={"cleanup.policy": "compact"})
    try:
        admin.create_topics([new])[topic].result(timeout=30)
    except Exception as exc:  # confluent-kafka raises KafkaException; an existing topic is what we want
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            return False
        raise DataError(f"cannot create topic {topic}: {exc}") from exc
    return True


def publish(
    frame: pd.DataFrame,
    mapping: Mapping[str, str],
    bootstrap: str,
    topic: str,
    limits: CatalogLimits,
    partitions: int = 1,
    replication: int = 1,
    progress: bool = False,
    logger: logging.Logger | None = None,
) -> PublishResult:
    """Produce each row of `frame` to `topic` keyed by product id and wait for the broker to hold them all."""
    result = PublishResult(rows=len(frame))
    rows = products(frame, mapping, int(time.time() * 1000), limits)  # the columns, before Kafka is touched
    ensure_topic(bootstrap, topic, partitions, replication, logger)
    producer = EventProducer(bootstrap, topic, **({"logger": logger} if logger is not None else {}))
    bar = _progress_bar(len(frame)) if progress else None
    for n, outcome in enumerate(rows, start=1):
        if isinstance(outcome, InvalidEvent):
            result.refused[outcome.reason] += 1
            if len(result.examples) < MAX_EXAMPLES:
                result.examples.append(f"row {n}: {outcome.reason}: {outcome.detail}")
        else:
            producer.send(outcome.product_id, outcome.SerializeToString())
            result.produced += 1
        if bar is not None:
            bar.update(1)
    remaining = producer.flush()
    if bar is not None:
        bar.close()
    result.failed = len(producer.failed) + remaining
    result.errors = producer.failed[:MAX_EXAMPLES]
    return result


def _progress_bar(total: int):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, unit="row", desc="catalog publish")  # tqdm writes to stderr
