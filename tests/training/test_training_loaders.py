"""Each real format and the generic CSV into canonical events, with bad rows counted; Parquet round trip."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from streamrec.events import COLUMNS
from streamrec.training.canonical import read_parquet, sessionize, write_parquet
from streamrec.training.loaders import (
    CsvMapping,
    load_csv,
    load_diginetica,
    load_path,
    load_taobao,
    load_yoochoose,
    sniff,
)


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_diginetica(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.csv.gz",
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;7;31331;1000;2016-05-09\n"
        "2;NA;;5;2016-05-10\n3;NA;9;x;2016-05-10\n",
    )
    assert sniff(path) == "diginetica"
    events, report = load_diginetica(path)
    assert list(events.columns) == list(COLUMNS)
    assert report.rows == 4 and report.kept == 2 and dict(report.bad) == {"missing_item": 1, "bad_timestamp": 1}
    assert events["user_id"].tolist() == ["", "7"] and set(events["type"]) == {"view"}
    assert events["ts_ms"].iloc[0] == 1462752000000 + 526309  # 2016-05-09 UTC + the in-session offset


def test_yoochoose_concatenates_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.tsv", "SessionId\tItemId\tTime\n3\t214716935\t1396437466.94\n3\t214832672\tbad\n")
    b = _write(tmp_path / "b.tsv", "SessionId\tItemId\tTime\n9\t5\t1396437467.5\n")
    assert sniff(a) == "yoochoose"
    events, report = load_yoochoose(a, b)
    assert report.kept == 2 and report.bad["bad_timestamp"] == 1
    assert events["ts_ms"].tolist() == [1396437466940, 1396437467500]
    assert set(events["type"]) == {"click"}


def test_taobao_types_window_and_sessions(tmp_path: Path) -> None:
    rows = [
        "1,10,100,pv,1511544070",
        "1,11,100,cart,1511544170",
        "1,12,100,buy,1511549070",  # 80 minutes later: a new session
        "1,13,100,fav,1511549071",
        "2,10,100,pv,1505000000",  # before the dataset's window: counted, dropped
        "2,10,100,like,1511544070",  # unknown behaviour: counted, dropped
    ]
    path = _write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    assert sniff(path) == "taobao"
    events, report = load_taobao(path)
    assert dict(report.bad) == {"out_of_window": 1, "unknown_type": 1}
    assert events["type"].tolist() == ["view", "add_to_cart", "purchase", "click"]
    assert events["session_id"].tolist() == ["1-1", "1-1", "1-2", "1-2"]
    assert events["category_id"].tolist() == ["100"] * 4


def test_generic_csv_with_the_rees46_layout(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "shop.csv",
        "event_time,event_type,product_id,category_id,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,35.79,541312140,s1\n"
        "2019-10-01 00:00:05 UTC,cart,44600062,2103807459595387724,35.79,541312140,s1\n"
        "2019-10-01 00:01:00 UTC,remove_from_cart,44600062,2103807459595387724,35.79,541312140,s1\n"
        "2019-10-01 00:02:00 UTC,purchase,44600062,2103807459595387724,35.79,541312140,s1\n"
        "not a time,view,1,2,3.0,4,s2\n",
    )
    assert sniff(path) == "csv"
    events, report = load_csv(path)
    assert dict(report.bad) == {"bad_timestamp": 1, "unknown_type": 1}
    assert events["type"].tolist() == ["view", "add_to_cart", "purchase"]
    assert events["price"].tolist() == [35.79] * 3
    assert events["ts_ms"].iloc[0] == 1569888000000


def test_generic_csv_without_sessions_is_sessionised_by_user(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "ts;uid;sku\n1000;u1;a\n2000;u1;b\n99999999;u1;c\n1500;u2;a\n")
    mapping = CsvMapping(
        item="sku",
        timestamp="ts",
        type=None,
        session=None,
        user="uid",
        category=None,
        price=None,
        time_format="unix_ms",
        sep=";",
    )
    events, report = load_csv(path, mapping)
    assert report.kept == 4
    assert events["session_id"].tolist() == ["u1-1", "u1-1", "u1-2", "u2-1"]


def test_sessionize_splits_on_the_gap() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "ts_ms": [0, 1_000, 1_000 + 31 * 60_000, 5]})
    assert sessionize(frame).tolist() == ["a-1", "a-1", "a-2", "b-1"]


def test_parquet_round_trip(tmp_path: Path) -> None:
    events, _ = load_yoochoose(_write(tmp_path / "a.tsv", "SessionId\tItemId\tTime\n1\t2\t3.0\n1\t4\t5.0\n"))
    path = write_parquet(events, tmp_path / "events.parquet")
    assert sniff(path) == "parquet"
    pd.testing.assert_frame_equal(read_parquet(path), events)
    again, report = load_path(path)
    assert report.kept == 2 and len(again) == 2
