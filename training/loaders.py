"""Readers for the real clickstream formats in ../shared/data and a generic shop-export CSV, into canonical events.

Formats (see ../shared/data/README.md): Diginetica item views, YooChoose (session-rec's tsv), Taobao
UserBehavior (pv/cart/fav/buy, sessionised per user by a 30-minute gap), canonical Parquet, and any CSV
whose columns a `CsvMapping` names (the REES46 "event_time,event_type,product_id,..." layout by default).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from streamrec.errors import DataError
from streamrec.training.canonical import DEFAULT_GAP_MS, LoadReport, read_parquet, sessionize, to_canonical

# Taobao's window is 2017-11-25 .. 2017-12-03 in UTC+8; rows outside it are known noise in the dataset.
TAOBAO_START_S = 1511539200  # 2017-11-25 00:00 UTC+8
TAOBAO_END_S = 1512316800  # 2017-12-04 00:00 UTC+8
# fav (wishlist) has no canonical type; it is an interaction with the item, like a click, so it becomes one.
TAOBAO_TYPES = {"pv": "view", "fav": "click", "cart": "add_to_cart", "buy": "purchase"}
COMMON_TYPES = {
    "view": "view",
    "pv": "view",
    "page_view": "view",
    "detail": "view",
    "click": "click",
    "fav": "click",
    "cart": "add_to_cart",
    "add_to_cart": "add_to_cart",
    "addtocart": "add_to_cart",
    "purchase": "purchase",
    "buy": "purchase",
    "order": "purchase",
    "transaction": "purchase",
}


@dataclass(frozen=True)
class CsvMapping:
    """Which column of a shop's CSV export holds which canonical field, and how to read it."""

    item: str = "product_id"
    timestamp: str = "event_time"
    type: str | None = "event_type"  # None: every row is a view
    session: str | None = "user_session"  # None: sessionise by user with `gap_ms`
    user: str | None = "user_id"
    category: str | None = "category_id"
    price: str | None = "price"
    quantity: str | None = None
    time_format: str = "datetime"  # datetime (parsed as UTC), unix_s or unix_ms
    types: dict[str, str] = field(default_factory=lambda: dict(COMMON_TYPES))
    sep: str = ","
    gap_ms: int = DEFAULT_GAP_MS


def _read_text(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)  # type: ignore[call-overload]
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _require(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}; it has {list(frame.columns)}")


def load_diginetica(path: Path) -> tuple[pd.DataFrame, LoadReport]:
    """`session_id;user_id;item_id;timeframe;eventdate`: time = the day (UTC) + timeframe ms into the session."""
    raw = _read_text(path, sep=";")
    _require(raw, ["session_id", "user_id", "item_id", "timeframe", "eventdate"], path)
    report = LoadReport(path.name, rows=len(raw))
    day = pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", errors="coerce", utc=True)
    day_ms = (day - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    offset = pd.to_numeric(raw["timeframe"], errors="coerce")
    frame = raw.assign(ts_ms=day_ms + offset, type="view")
    report.notes.append("timestamps are the event day plus the in-session offset, not absolute times")
    return to_canonical(frame, report), report


def load_yoochoose(*paths: Path) -> tuple[pd.DataFrame, LoadReport]:
    """session-rec's `SessionId<TAB>ItemId<TAB>Time` (unix seconds); several files are concatenated."""
    frames = []
    for path in paths:
        raw = _read_text(path, sep="\t")
        _require(raw, ["SessionId", "ItemId", "Time"], path)
        frames.append(raw)
    raw = pd.concat(frames, ignore_index=True)
    report = LoadReport("+".join(p.name for p in paths), rows=len(raw))
    seconds = pd.to_numeric(raw["Time"], errors="coerce")
    frame = pd.DataFrame(
        {"session_id": raw["SessionId"], "item_id": raw["ItemId"], "ts_ms": seconds * 1000, "type": "click"}
    )
    return to_canonical(frame, report), report


def load_taobao(path: Path, gap_ms: int = DEFAULT_GAP_MS) -> tuple[pd.DataFrame, LoadReport]:
    """Headerless `user_id,item_id,category_id,behavior_type,timestamp`; sessions by user and inactivity gap."""
    raw = _read_text(path, header=None, names=["user_id", "item_id", "category_id", "behavior", "timestamp"])
    report = LoadReport(path.name, rows=len(raw))
    seconds = pd.to_numeric(raw["timestamp"], errors="coerce")
    raw = report.drop(raw, seconds.notna() & ((seconds < TAOBAO_START_S) | (seconds >= TAOBAO_END_S)), "out_of_window")
    frame = raw.assign(ts_ms=pd.to_numeric(raw["timestamp"], errors="coerce") * 1000)
    frame["type"] = frame["behavior"].str.strip().str.lower().map(TAOBAO_TYPES).fillna(frame["behavior"])
    frame["session_id"] = sessionize(frame, "user_id", gap_ms)
    report.notes.append(f"sessions: by user with a {gap_ms // 60000}-minute inactivity gap; fav counts as click")
    return to_canonical(frame, report), report


def _timestamps_ms(values: pd.Series, time_format: str) -> pd.Series:
    if time_format == "unix_s":
        return pd.to_numeric(values, errors="coerce") * 1000
    if time_format == "unix_ms":
        return pd.to_numeric(values, errors="coerce")
    if time_format == "datetime":
        parsed = pd.to_datetime(values.str.replace(" UTC", "", regex=False), errors="coerce", utc=True, format="mixed")
        return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    raise DataError(f"unknown time_format {time_format!r}: use datetime, unix_s or unix_ms")


def load_csv(path: Path, mapping: CsvMapping = CsvMapping()) -> tuple[pd.DataFrame, LoadReport]:
    """A shop's event export whose columns `mapping` names; rows of types outside `mapping.types` are counted."""
    raw = _read_text(path, sep=mapping.sep)
    named = {
        "item_id": mapping.item,
        "session_id": mapping.session,
        "user_id": mapping.user,
        "category_id": mapping.category,
        "price": mapping.price,
        "quantity": mapping.quantity,
    }
    _require(raw, [c for c in [mapping.timestamp, mapping.type, *named.values()] if c], path)
    report = LoadReport(path.name, rows=len(raw))
    frame = pd.DataFrame({field_: raw[col] for field_, col in named.items() if col}, index=raw.index)
    frame["ts_ms"] = _timestamps_ms(raw[mapping.timestamp], mapping.time_format)
    raw_type = raw[mapping.type].str.strip().str.lower() if mapping.type else pd.Series("view", raw.index)
    frame["type"] = raw_type.map(mapping.types).fillna(raw_type)
    if not mapping.session:
        frame["session_id"] = sessionize(frame, "user_id", mapping.gap_ms)
        report.notes.append(f"sessions: by user with a {mapping.gap_ms // 60000}-minute inactivity gap")
    return to_canonical(frame, report), report


def sniff(path: Path) -> str:
    """The format of a file by its name and first line: parquet, yoochoose, diginetica, taobao or csv."""
    if path.suffix == ".parquet":
        return "parquet"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            first = fh.readline().strip()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if first.split("\t")[:3] == ["SessionId", "ItemId", "Time"]:
        return "yoochoose"
    if first.startswith("session_id;user_id;item_id;timeframe;eventdate"):
        return "diginetica"
    fields = first.split(",")
    if len(fields) == 5 and fields[3] in TAOBAO_TYPES and fields[4].isdigit():
        return "taobao"
    return "csv"


def load_path(path: Path) -> tuple[pd.DataFrame, LoadReport]:
    """Any supported file, its format found by `sniff`."""
    kind = sniff(path)
    if kind == "parquet":
        frame = read_parquet(path)
        return frame, LoadReport(path.name, rows=len(frame))
    if kind == "yoochoose":
        return load_yoochoose(path)
    if kind == "diginetica":
        return load_diginetica(path)
    if kind == "taobao":
        return load_taobao(path)
    return load_csv(path)
