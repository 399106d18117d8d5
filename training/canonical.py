"""Raw columns into canonical events (DESIGN §3): validation with counted bad rows, sessionisation, Parquet.

Every loader builds a DataFrame of raw-but-renamed columns and hands it to `to_canonical`, which drops each
row that cannot be an event and counts it under a reason; nothing is dropped without being counted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.errors import DataError
from streamrec.events import COLUMNS, EVENT_TYPES

DEFAULT_GAP_MS = 30 * 60 * 1000  # a session ends after 30 minutes without an event

ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("category_id", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("ts_ms", pa.int64()),
    ]
)


@dataclass
class LoadReport:
    """How many rows a file had, how many became events, and why the others did not."""

    source: str
    rows: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.rows - sum(self.bad.values())

    def drop(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, reason: str) -> pd.DataFrame:
        """Remove the rows where `mask` holds, counting them under `reason`."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.bad[reason] += int(mask.sum())
        return frame[~mask]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "kept": self.kept, "bad": dict(self.bad), "notes": self.notes}


def _text(series: pd.Series) -> pd.Series:
    """Strings with missing values and 'NA'-style markers as ''."""
    out = series.astype("string").fillna("").str.strip()
    return out.mask(out.str.upper().isin(["NA", "NAN", "NULL", "NONE"]), "").astype(str)


def to_canonical(raw: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """Validate and complete renamed raw columns into the canonical layout, in the input's row order.

    `raw` must have item_id, ts_ms, type and session_id; user_id, category_id, price, quantity and
    event_id are optional. ts_ms may hold NaN where the source timestamp did not parse.
    """
    frame = raw.copy()
    for name in ("item_id", "session_id", "user_id", "category_id", "event_id"):
        frame[name] = _text(frame[name]) if name in frame else ""
    frame["type"] = _text(frame["type"]).str.lower()
    frame = report.drop(frame, frame["item_id"] == "", "missing_item")
    frame = report.drop(frame, frame["session_id"] == "", "missing_session")
    ts = pd.to_numeric(frame["ts_ms"], errors="coerce")
    frame = report.drop(frame, ts.isna().to_numpy(), "bad_timestamp")
    frame["ts_ms"] = ts[ts.notna()].round().astype(np.int64)
    frame = report.drop(frame, ~frame["type"].isin(EVENT_TYPES), "unknown_type")
    price = pd.to_numeric(frame["price"], errors="coerce") if "price" in frame else pd.Series(np.nan, frame.index)
    frame["price"] = price.astype(float)
    quantity = pd.to_numeric(frame["quantity"], errors="coerce") if "quantity" in frame else None
    frame["quantity"] = 1 if quantity is None else quantity.fillna(1).astype(np.int64)
    missing_ids = frame["event_id"] == ""
    frame.loc[missing_ids, "event_id"] = [f"{report.source}-{i}" for i in frame.index[missing_ids]]
    return frame[list(COLUMNS)].reset_index(drop=True)


def sessionize(frame: pd.DataFrame, by: str = "user_id", gap_ms: int = DEFAULT_GAP_MS) -> pd.Series:
    """Session ids for rows without one: a new session starts after `gap_ms` without an event of the same `by`."""
    order = frame.sort_values([by, "ts_ms"], kind="stable")
    key = order[by].astype(str)
    ts = pd.to_numeric(order["ts_ms"], errors="coerce")
    new = (key != key.shift()) | (ts.diff() > gap_ms) | ts.isna()
    number = new.groupby(key).cumsum().astype(int)
    return (key + "-" + number.astype(str)).reindex(frame.index)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Canonical events to Parquet with the canonical schema (column order and types fixed)."""
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise DataError(f"cannot write canonical Parquet: columns {sorted(missing)} are missing")
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=ARROW_SCHEMA, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_parquet(path: Path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise DataError(f"{path} is not canonical events Parquet: it lacks {sorted(missing)}")
    return frame[list(COLUMNS)]


def events_sha256(frame: pd.DataFrame) -> str:
    """A stable digest of the training events (canonical columns, in their given order)."""
    digest = hashlib.sha256()
    for col in frame.columns:
        digest.update(col.encode())
        digest.update(frame[col].astype(str).str.cat(sep="\x1f").encode())
    return digest.hexdigest()
